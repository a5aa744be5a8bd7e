//! Policy checks on the source tree itself.

use std::path::{Path, PathBuf};

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn unsafe_lives_only_in_src_sys() {
    let mut rs = Vec::new();
    files(&root().join("src"), "rs", &mut rs);
    assert!(rs.len() > 5);
    for path in rs {
        let rel = path.strip_prefix(root()).unwrap();
        if rel.starts_with("src/sys") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            assert!(
                !code.contains("unsafe ") && !code.contains("unsafe{"),
                "{}:{}: `unsafe` outside src/sys/: {line}",
                rel.display(),
                i + 1
            );
        }
    }
}

#[test]
fn every_unsafe_block_in_sys_has_a_safety_comment() {
    let mut rs = Vec::new();
    files(&root().join("src/sys"), "rs", &mut rs);
    for path in rs {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap();
            if !code.contains("unsafe {") {
                continue;
            }
            // The SAFETY comment sits on one of the lines just above (or on this line, for a
            // block inside an expression).
            let above = lines[i.saturating_sub(8)..=i].join("\n");
            assert!(
                above.contains("SAFETY:"),
                "{}:{}: unsafe block without a SAFETY comment",
                path.display(),
                i + 1
            );
        }
    }
}

#[test]
fn changelog_names_the_current_version() {
    let changelog = std::fs::read_to_string(root().join("CHANGELOG.md")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(changelog.contains(&format!("## {version}")), "CHANGELOG.md lacks ## {version}");
}

#[test]
fn readme_starts_with_the_demo_and_test_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let head: String = readme.lines().take(25).collect::<Vec<_>>().join("\n");
    assert!(head.contains("cargo run"), "README must start with the demo command");
    assert!(head.contains("cargo test"), "README must start with the test command");
    let msrv = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let msrv =
        msrv.lines().find_map(|l| l.strip_prefix("rust-version = ")).unwrap().trim_matches('"');
    assert!(readme.contains(msrv), "README must state the MSRV {msrv}");
}
