//! Every Gatehouse config snippet in the README and docs/ passes `gatehouse
//! check`. Fragments are completed with stub sections (a listener, the
//! upstreams and connectors they name); peer host names are pointed at
//! loopback, since name resolution is the environment's business.
#![allow(clippy::unwrap_used)]

mod common;

use common::{repo_root, BIN};
use std::path::{Path, PathBuf};
use std::process::Command;

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().and_then(|x| x.to_str()) == Some("md") {
                out.push(p);
            }
        }
    }
    out
}

fn toml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_start()) {
            (None, "```toml") => cur = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

fn quoted_after<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|r| r.trim_start().strip_prefix('='))
        .flat_map(|r| r.split('"').skip(1).step_by(2))
        .collect()
}

fn complete(snippet: &str) -> String {
    let mut text = String::new();
    for line in snippet.lines() {
        if line.trim_start().starts_with("peers") {
            let fixed: Vec<String> = line
                .split('"')
                .enumerate()
                .map(|(i, part)| {
                    if i % 2 == 1 {
                        let port = part.rsplit(':').next().unwrap_or("9");
                        format!("127.0.0.1:{port}")
                    } else {
                        part.to_string()
                    }
                })
                .collect();
            text.push_str(&fixed.join("\""));
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    let mut extra = String::new();
    if !text.contains("[server]") {
        extra.push_str("[server]\nlisten = [\"127.0.0.1:1\"]\n\n");
    }
    for u in quoted_after(&text, "upstream") {
        if !text.contains(&format!("[upstreams.{u}]"))
            && !extra.contains(&format!("[upstreams.{u}]"))
        {
            extra.push_str(&format!("[upstreams.{u}]\npeers = [\"127.0.0.1:9\"]\n\n"));
        }
    }
    for c in quoted_after(&text, "connectors") {
        if !text.contains(&format!("[connectors.{c}]"))
            && !extra.contains(&format!("[connectors.{c}]"))
        {
            extra.push_str(&format!(
                "[connectors.{c}]\nkind = \"jwt\"\nalgorithms = [\"HS256\"]\nsecret = \"{}\"\n\n",
                "s".repeat(32)
            ));
        }
    }
    // Stubs go first: a snippet may end inside a table.
    format!("{extra}{text}")
}

#[test]
fn every_config_snippet_in_the_docs_passes_check() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for md in markdown_files(&root) {
        for (i, block) in toml_blocks(&std::fs::read_to_string(&md).unwrap())
            .into_iter()
            .enumerate()
        {
            let is_gatehouse = ["[server]", "[upstreams.", "[connectors.", "[[routes]]"]
                .iter()
                .any(|k| block.contains(k));
            if !is_gatehouse {
                continue;
            }
            let path = dir.path().join(format!("snippet-{checked}.toml"));
            let cfg = complete(&block);
            std::fs::write(&path, &cfg).unwrap();
            // From the repository root, as the docs' relative paths
            // (`configs/keys/consumers.toml`) are written.
            let out = Command::new(BIN)
                .current_dir(&root)
                .args(["check", "-c"])
                .arg(&path)
                .output()
                .unwrap();
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{} block {}:\n{}\n--- completed config ---\n{cfg}",
                    md.strip_prefix(&root).unwrap().display(),
                    i + 1,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(checked >= 8, "found only {checked} snippets");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
