//! The `gatehouse` command.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  gatehouse --config /etc/gatehouse/gatehouse.toml          run the proxy
  gatehouse run --config configs/demo.toml --log-format json
  gatehouse check --config configs/demo.toml                validate, print a summary

Signals: SIGHUP reloads the configuration (so does any change of the file),
SIGTERM drains and exits, SIGINT exits at once.";

/// Gatehouse: an authenticating edge proxy (JWT, OIDC userinfo) on Pingora.
#[derive(Parser, Debug)]
#[command(name = "gatehouse", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "GATEHOUSE_CONFIG",
        default_value = "gatehouse.toml"
    )]
    config: PathBuf,
    /// Log format.
    #[arg(long, global = true, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate a configuration and print a summary; exit 1 on any error.
    Check,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let registry = gatehouse_connectors::Registry::builtin();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(gatehouse::check(&cli.common.config, &registry)) {
                Ok(summary) => {
                    println!("{}: OK\n{summary}", cli.common.config.display());
                    ExitCode::SUCCESS
                }
                Err(errs) => {
                    let n = errs.0.len();
                    eprintln!(
                        "{}: {n} error{}",
                        cli.common.config.display(),
                        if n == 1 { "" } else { "s" }
                    );
                    for e in errs.iter() {
                        eprintln!("  {e}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run => {
            init_logging(cli.common.log_format);
            match gatehouse::server::run(cli.common.config, registry) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
