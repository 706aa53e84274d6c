//! The Dockerfiles (`deploy/docker/*Dockerfile`): each has a `FROM`, copies
//! only paths that exist (the build context is the repository root), and
//! has its own `.dockerignore`.

use std::path::Path;

/// Checks every Dockerfile under `deploy/docker`.
pub fn check(root: &Path) -> crate::Outcome {
    let dir = root.join("deploy/docker");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|err| vec![format!("{}: {err}", dir.display())])?
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("Dockerfile"))
        })
        .collect();
    files.sort();
    let mut errors = Vec::new();
    for file in &files {
        let name = crate::yaml::rel(root, file);
        let text = crate::yaml::read(file).map_err(|err| vec![err])?;
        for source in copy_sources(&text) {
            if !root.join(&source).exists() {
                errors.push(format!(
                    "{name}: COPY source {source} does not exist in the repository"
                ));
            }
        }
        if !text
            .lines()
            .any(|l| l.starts_with("FROM ") || l.starts_with("FROM\t"))
        {
            errors.push(format!("{name}: no FROM"));
        }
        let ignore = format!("{}.dockerignore", file.display());
        if !Path::new(&ignore).is_file() {
            errors.push(format!(
                "{name}: no {} (the context is the repository root)",
                crate::yaml::rel(root, Path::new(&ignore))
            ));
        }
    }
    crate::outcome(errors, || {
        format!(
            "{} Dockerfiles: every COPY source exists, each has its .dockerignore",
            files.len()
        )
    })
}

/// The build-context paths the `COPY` and `ADD` instructions read (those
/// copying `--from` another stage read none).
pub fn copy_sources(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let mut sources = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(instruction) = words.first() else {
            continue;
        };
        if !["COPY", "ADD"].contains(&instruction.to_uppercase().as_str()) {
            continue;
        }
        if words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let args: Vec<&str> = words[1..]
            .iter()
            .copied()
            .filter(|w| !w.starts_with("--"))
            .collect();
        if let Some((_destination, from)) = args.split_last() {
            sources.extend(
                from.iter()
                    .map(|s| s.trim_matches(|c| c == '"' || c == '\'').to_string()),
            );
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::copy_sources;

    #[test]
    fn reads_the_sources_of_copy_and_add_only() {
        let file = "FROM rust AS b\n# COPY commented out\nCOPY Cargo.toml \\\n  Cargo.lock ./\nCOPY --chown=1:1 sql /sql\nCOPY --from=b /out/x /bin/\nRUN cp a b\nadd x.tar /z\n";
        assert_eq!(
            copy_sources(file),
            ["Cargo.toml", "Cargo.lock", "sql", "x.tar"]
        );
    }
}
