//! The `gatehouse` command.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc serves Pingora's per-request allocations (a 14 KB request future,
/// header maps, buffers) with 19 % fewer instructions per request than glibc.
/// (An `alloc-count` build counts allocations with the library's allocator instead.)
#[cfg(all(feature = "mimalloc", not(feature = "alloc-count")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often freed memory is given back to the system: every second unless
/// `GATEHOUSE_ALLOCATOR_COLLECT_MS` says otherwise (`0`: never).
#[cfg(all(feature = "mimalloc", not(feature = "alloc-count")))]
const COLLECT_EVERY_MS: u64 = 1000;

/// Starts a thread that asks mimalloc every second to purge what was freed
/// more than its `purge_delay` (1 s) ago. Without it the purge runs only
/// when a thread allocates new pages: after a flood of connections closed, a
/// quiet worker kept the flood's peak RSS for good (500 idle connections
/// closed: +9.6 MB still after 60 s; with the collector RSS is back within
/// 8 % of the start after 1 s). Purging on every free instead
/// (`MIMALLOC_PURGE_DELAY=0`) costs 17 % of the requests per second
/// (benches/connection_memory.sh); this thread costs nothing on the request
/// path.
#[cfg(all(feature = "mimalloc", not(feature = "alloc-count")))]
#[allow(unsafe_code)]
fn start_allocator_collector() {
    let every = std::env::var("GATEHOUSE_ALLOCATOR_COLLECT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(COLLECT_EVERY_MS);
    if every == 0 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("gatehouse-mem".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(every));
            // SAFETY: `mi_collect` takes a flag, works on the calling
            // thread's heap and mimalloc's (internally synchronised) arenas,
            // and may be called from any thread at any time.
            unsafe { libmimalloc_sys::mi_collect(false) };
        });
    if let Err(e) = spawned {
        eprintln!("warning: no allocator collector thread: {e}");
    }
}

#[cfg(not(all(feature = "mimalloc", not(feature = "alloc-count"))))]
fn start_allocator_collector() {}

const EXAMPLES: &str = "\
Examples:
  gatehouse --config /etc/gatehouse/gatehouse.toml          run the proxy
  gatehouse run --config configs/demo.toml --log-format json
  gatehouse check --config configs/demo.toml                validate, print a summary
  gatehouse token mint --alg RS256 --key key.pem --sub alice --aud api --exp 15m
  gatehouse token mint --alg ES512 --key p521.pem --exp=-5m         an already expired token
  gatehouse token inspect $TOKEN --config gatehouse.toml --route orders
  gatehouse jwks from-pem key1.pub.pem key2.pub.pem --kid k1 --kid k2

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
    /// Print the JSON Schema of the configuration (for editors and linters).
    Schema,
    /// Mint and inspect tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// JWKS helpers.
    #[command(subcommand)]
    Jwks(JwksCommand),
    /// API keys for `api_key` connectors.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Make a new random key, add its hashed entry to a keys file, and print the key (and, with
    /// --signed, its shared secret) once: neither is stored in clear in the keys file.
    Add {
        /// The keys file (created when missing).
        #[arg(long)]
        file: PathBuf,
        /// The consumer (application) the key belongs to.
        #[arg(long)]
        consumer: String,
        /// The plan.
        #[arg(long)]
        plan: Option<String>,
        /// A signed key (Mashery `apiKeyAndSecret_SHA256`): also make a shared secret.
        #[arg(long)]
        signed: bool,
        /// Where the secret is written (default: beside the keys file, mode 0600).
        #[arg(long, requires = "signed")]
        secret_file: Option<PathBuf>,
    },
    /// Print the keys-file line of a key you already have (`sha256 = "…"`).
    Hash {
        /// The key (`-` reads it from standard input).
        key: String,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Sign a test token.
    Mint {
        /// Algorithm (RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA HS256 HS384 HS512).
        #[arg(long, default_value = "RS256")]
        alg: String,
        /// Private key PEM (for RS*, PS*, ES*, EdDSA; ES512: a P-521 key, PKCS#8 or SEC1).
        #[arg(long)]
        key: Option<PathBuf>,
        /// HMAC secret (for HS*).
        #[arg(long, env = "GATEHOUSE_MINT_SECRET")]
        secret: Option<String>,
        /// `kid` header.
        #[arg(long)]
        kid: Option<String>,
        /// `iss` claim.
        #[arg(long)]
        iss: Option<String>,
        /// `aud` claim (repeat for several).
        #[arg(long)]
        aud: Vec<String>,
        /// `sub` claim.
        #[arg(long)]
        sub: Option<String>,
        /// Lifetime: `exp` = now + this. Negative for an already expired token:
        /// `--exp=-5m` (or `--exp -5m`) sets `exp` 5 minutes ago, and `iat`/`nbf` to `exp`.
        #[arg(long, default_value = "15m", allow_hyphen_values = true, value_parser = gatehouse::tools::parse_lifetime)]
        exp: i64,
        /// Extra claim `name=value` (JSON values such as `["a","b"]` or `true` are parsed).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Print this many tokens, one per line, each with a distinct `jti` (for load tests).
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Decode a token without trusting it; with --route, explain what that route of --config does with it.
    Inspect {
        /// The token (`-` reads it from standard input).
        token: String,
        /// Route of the --config file to evaluate the token against.
        #[arg(long)]
        route: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum JwksCommand {
    /// Print a JWKS for PEM keys (public or private; only public members are printed).
    FromPem {
        /// PEM files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `kid` for each file, in order (default: the RFC 7638 thumbprint).
        #[arg(long)]
        kid: Vec<String>,
        /// Algorithm for RSA keys.
        #[arg(long, default_value = "RS256")]
        rsa_alg: String,
    },
}

fn keys_command(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Add {
            file,
            consumer,
            plan,
            signed,
            secret_file,
        } => {
            let k = gatehouse::keytool::add(
                &file,
                &consumer,
                plan.as_deref(),
                signed,
                secret_file.as_deref(),
            )?;
            println!("key: {}", k.key);
            if let Some((secret, path)) = k.secret {
                println!("secret: {secret} (written to {})", path.display());
            }
            eprintln!("added to {}; the key is shown only now", file.display());
        }
        KeysCommand::Hash { key } => {
            let key = if key == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s.trim_end_matches(['\n', '\r']).to_string()
            } else {
                key
            };
            println!("{}", gatehouse_connectors::apikey::keys::hash_line(&key));
        }
    }
    Ok(())
}

fn parse_mint_alg(a: &str) -> Result<gatehouse_connectors::jwt::Alg, String> {
    a.parse()
        .map_err(|_| format!("unsupported algorithm \"{a}\""))
}

fn parse_alg(a: &str) -> Result<jsonwebtoken::Algorithm, String> {
    a.parse()
        .map_err(|_| format!("unsupported algorithm \"{a}\""))
}

fn token_command(
    cmd: TokenCommand,
    config: &std::path::Path,
    registry: &gatehouse_connectors::Registry,
) -> anyhow::Result<bool> {
    match cmd {
        TokenCommand::Mint {
            alg,
            key,
            secret,
            kid,
            iss,
            aud,
            sub,
            exp,
            claims,
            count,
        } => {
            let opts = gatehouse::tools::MintOptions {
                alg: parse_mint_alg(&alg).map_err(anyhow::Error::msg)?,
                key,
                secret,
                kid,
                iss,
                aud,
                sub,
                exp,
                claims,
            };
            {
                use std::io::Write;
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                for t in gatehouse::tools::mint_many(&opts, count)? {
                    writeln!(out, "{t}")?;
                }
                out.flush()?;
            }
            Ok(true)
        }
        TokenCommand::Inspect { token, route } => {
            let token = if token == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
                t.trim().to_string()
            } else {
                token
            };
            print!("{}", gatehouse::tools::describe(&token)?);
            let Some(route) = route else {
                println!("signature: not verified (add --config FILE --route NAME to check the token against a route)");
                return Ok(true);
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (report, ok) =
                rt.block_on(gatehouse::tools::explain(&token, config, &route, registry))?;
            print!("{report}");
            Ok(ok)
        }
    }
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
    // One process-wide rustls provider (clients that build their TLS config
    // from the default, such as rediss:// connections, find it).
    let _ = rustls::crypto::ring::default_provider().install_default();
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
        Command::Token(cmd) => match token_command(cmd, &cli.common.config, &registry) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(2),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Keys(cmd) => match keys_command(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Jwks(JwksCommand::FromPem {
            files,
            kid,
            rsa_alg,
        }) => {
            let out = parse_alg(&rsa_alg)
                .map_err(anyhow::Error::msg)
                .and_then(|a| gatehouse::tools::jwks_from_pem(&files, &kid, a));
            match out {
                Ok(j) => {
                    println!("{j}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Schema => {
            match serde_json::to_string_pretty(&gatehouse::schema::schema(&registry)) {
                Ok(s) => {
                    println!("{s}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run => {
            init_logging(cli.common.log_format);
            start_allocator_collector();
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
