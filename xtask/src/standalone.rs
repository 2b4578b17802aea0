//! The repository stands alone: no tracked file points at a path outside it.
//!
//! A fresh clone on a machine with only the Rust toolchain must build, test and run, so nothing
//! may read a sibling folder of the checkout or an absolute path of a developer's machine. The
//! check reads every file git tracks and refuses:
//! - a relative path that climbs above the repository: more `../` in a row than the file sits
//!   below the root (for Rust sources, below the root of their package, since `env!("CARGO_MANIFEST_DIR")`
//!   is where their paths usually start);
//! - an absolute path under a home or work directory of a machine.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Absolute path prefixes that only exist on some machine. Written in pieces so this file does
/// not match itself.
fn machine_prefixes() -> [String; 3] {
    [
        ["/", "work/"].concat(),
        ["/", "root/"].concat(),
        ["/", "home/"].concat(),
    ]
}

/// Checks every tracked file under `root`.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .context("running git ls-files")?;
    if !listed.status.success() {
        bail!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    let mut found = Vec::new();
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let Ok(text) = std::fs::read_to_string(root.join(&name)) else {
            continue; // binary, or removed in the work tree
        };
        let allowed_ups = allowed_ups(root, &name);
        for (number, line) in text.lines().enumerate() {
            if let Some(why) = outside_reference(line, allowed_ups) {
                found.push(format!("{name}:{}: {why}: {}", number + 1, line.trim()));
            }
        }
    }
    if !found.is_empty() {
        bail!(
            "files reference paths outside the repository (a fresh clone has nothing beside it):\n{}",
            found.join("\n")
        );
    }
    println!("xtask: standalone: no tracked file references a path outside the repository");
    Ok(())
}

/// How many `../` in a row a path in this file may climb and still stay inside the repository.
fn allowed_ups(root: &Path, name: &str) -> usize {
    let file = Path::new(name);
    let mut dir = file.parent().unwrap_or(Path::new(""));
    if name.ends_with(".rs") {
        // Rust paths start at the package (`CARGO_MANIFEST_DIR`), not at the file.
        let mut package = dir;
        loop {
            if root.join(package).join("Cargo.toml").is_file() {
                dir = package;
                break;
            }
            match package.parent() {
                Some(parent) => package = parent,
                None => break,
            }
        }
    }
    dir.components().count()
}

/// Why a line points outside the repository, if it does.
fn outside_reference(line: &str, allowed_ups: usize) -> Option<String> {
    for prefix in machine_prefixes() {
        if line.contains(&prefix) {
            return Some(format!("an absolute path of a machine ({prefix})"));
        }
    }
    let up = ["..", "/"].concat();
    let mut rest = line;
    while let Some(start) = rest.find(&up) {
        let run = &rest[start..];
        let ups = run
            .as_bytes()
            .chunks(up.len())
            .take_while(|chunk| *chunk == up.as_bytes())
            .count();
        if ups > allowed_ups {
            return Some(format!("{ups} levels up from {allowed_ups} below the root"));
        }
        rest = &run[ups * up.len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::outside_reference;

    #[test]
    fn climbing_out_of_the_repository_is_found() {
        let sibling = ["\"", "..", "/", "..", "/", "..", "/shared/fixtures\""].concat();
        assert!(outside_reference(&sibling, 2).is_some());
        assert!(outside_reference(&sibling, 3).is_none());
        let machine = ["see ", "/", "work", "/main/README.md"].concat();
        assert!(outside_reference(&machine, 9).is_some());
        assert!(outside_reference("plain text, a/b/c and ./x", 0).is_none());
    }
}
