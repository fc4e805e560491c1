//! Tidy: the rules of ARCHITECTURE.md that a text scan of `src/` can check, in the spirit of
//! rust-analyzer's `tidy.rs`. Each rule is a function of (path, text) so that the tests below can
//! show it catches a violation.
//!
//! - status output only through the UI layer: no `print!`/`println!`/`eprint!`/`eprintln!`/`dbg!`
//!   and no `std::io::stdout()`/`stderr()` outside `src/ui.rs`;
//! - processes start only in the tools layer: `std::process`, `tokio::process` and `duct`
//!   appear only under `src/tools/`, and processes are started only in `src/tools/mod.rs`;
//! - no `.unwrap()` in code that is not a test (input and I/O must fail with a message);
//! - every `pub` item and field has a doc comment (rustc's `missing_docs` skips items of
//!   private modules).

use std::path::{Path, PathBuf};

/// One broken rule at a place.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    path: String,
    line: usize,
    rule: &'static str,
}

/// Uses of `std::process` that start nothing and may appear anywhere: the binary's exit status.
const PROCESS_ALLOWED: &[&str] = &["std::process::ExitCode"];

/// The lines of `text` that are not test code, with their 1-based numbers: an inline
/// `#[cfg(test)] mod … { … }` is skipped up to its closing brace at the same indentation.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == "#[cfg(test)]"
            && let Some(next) = lines.get(i + 1)
            && next.trim_start().starts_with("mod ")
            && next.trim_end().ends_with('{')
        {
            let indent = &next[..next.len() - next.trim_start().len()];
            let close = format!("{indent}}}");
            let end = lines[i + 2..]
                .iter()
                .position(|l| *l == close)
                .map_or(lines.len(), |p| i + 2 + p);
            i = end + 1;
            continue;
        }
        out.push((i + 1, line));
        i += 1;
    }
    out
}

/// The code of a line without its `//` comment (a `//` inside a string literal is rare enough
/// in this code base that the scan ignores the case).
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The line without the contents of its string literals, so that a word inside a message
/// (`"fn main() { println!(); }"`) is not taken for code.
fn without_strings(line: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut prev = '\0';
    for c in line.chars() {
        if c == '"' && prev != '\\' {
            in_string = !in_string;
            out.push(c);
        } else if !in_string {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn check_file(path: &str, text: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut report = |line: usize, rule: &'static str| {
        found.push(Violation {
            path: path.to_string(),
            line,
            rule,
        })
    };
    let in_ui = path == "src/ui.rs";
    let in_tools = path.starts_with("src/tools/");
    let spawner = path == "src/tools/mod.rs";
    let lines = code_lines(text);
    for (n, raw) in &lines {
        let code = without_strings(without_comment(raw));
        let macros = ["print!(", "println!(", "eprint!(", "eprintln!(", "dbg!("]
            .iter()
            .any(|m| code.contains(m) && !code.contains(&format!("_{m}")));
        let streams = ["io::stdout()", "io::stderr()"]
            .iter()
            .any(|m| code.contains(m));
        if !in_ui && (macros || streams) {
            report(*n, "status output outside src/ui.rs");
        }
        let process = code.replace(PROCESS_ALLOWED[0], "");
        if !in_tools
            && ["std::process", "tokio::process", "duct::", "use duct"]
                .iter()
                .any(|m| process.contains(m))
        {
            report(*n, "process API outside src/tools");
        }
        if in_tools
            && !spawner
            && ["Command::new(", "duct::cmd", ".spawn()"]
                .iter()
                .any(|m| code.contains(m))
        {
            report(*n, "a process started outside src/tools/mod.rs");
        }
        if code.contains(".unwrap()") {
            report(*n, ".unwrap() in non-test code");
        }
    }
    for (i, (n, raw)) in lines.iter().enumerate() {
        let t = raw.trim_start();
        let public = t.starts_with("pub ")
            && !t.starts_with("pub mod ")
            && !t.starts_with("pub use ")
            && !t.starts_with("pub(crate)");
        if !public {
            continue;
        }
        if !documented(&lines[..i]) {
            report(*n, "public item without a doc comment");
        }
    }
    found
}

/// Whether the item after `before` has a doc comment: walking up over its attributes (also
/// those rustfmt wraps over several lines), the first other line is `///`.
fn documented(before: &[(usize, &str)]) -> bool {
    let mut in_attribute = false;
    for (_, line) in before.iter().rev() {
        let t = line.trim();
        if in_attribute {
            in_attribute = !t.starts_with("#[");
            continue;
        }
        if t.starts_with("#[") && t.ends_with(']') {
            continue;
        }
        if t.ends_with(']') {
            // The last line of an attribute that starts further up.
            in_attribute = true;
            continue;
        }
        return t.starts_with("///");
    }
    false
}

/// Every `.rs` file under `dir`, with the files of `#[cfg(test)] mod x;` declarations left out.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut tests = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            if pair[0].trim() == "#[cfg(test)]"
                && let Some(name) = pair[1]
                    .trim()
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'))
            {
                let parent = f.parent().expect("parent");
                let base = if f
                    .file_name()
                    .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
                {
                    parent.to_path_buf()
                } else {
                    parent.join(f.file_stem().expect("stem"))
                };
                tests.push(base.join(format!("{name}.rs")));
            }
        }
    }
    files.retain(|f| !tests.contains(f));
    files.sort();
    files
}

#[test]
fn src_keeps_the_architecture_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = sources(&root.join("src"));
    assert!(files.len() > 30, "the scan found the sources: {files:?}");
    let mut all = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&f).expect("read source");
        all.extend(check_file(&rel, &text));
    }
    assert!(
        all.is_empty(),
        "rules of ARCHITECTURE.md broken:\n{}",
        all.iter()
            .map(|v| format!("  {}:{}: {}", v.path, v.line, v.rule))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn rules(path: &str, text: &str) -> Vec<&'static str> {
    check_file(path, text).into_iter().map(|v| v.rule).collect()
}

#[test]
fn the_scan_catches_status_output_outside_ui() {
    let text = "/// Doc.\npub fn f() {\n    println!(\"hi\");\n    eprint!(\"x\");\n}\n";
    assert_eq!(
        rules("src/load/mod.rs", text),
        ["status output outside src/ui.rs"; 2]
    );
    assert!(rules("src/ui.rs", text).is_empty());
    let direct = "fn f() {\n    let _ = std::io::stdout().write_all(b\"x\");\n}\n";
    assert_eq!(
        rules("src/simulate/mod.rs", direct),
        ["status output outside src/ui.rs"]
    );
    // Inside a string, in a comment, or in test code it is not status output.
    let quiet = "fn f() -> &'static str {\n    // println!(\"x\")\n    \"fn main() { println!(); }\"\n}\n\n#[cfg(test)]\nmod tests {\n    fn g() {\n        println!(\"t\");\n    }\n}\n";
    assert!(rules("src/app.rs", quiet).is_empty());
}

#[test]
fn the_scan_catches_processes_outside_tools() {
    let text = "fn f() {\n    let _ = std::process::Command::new(\"ls\");\n    let _ = duct::cmd!(\"ls\");\n    use tokio::process::Child;\n}\n";
    assert_eq!(
        rules("src/app.rs", text),
        ["process API outside src/tools"; 3]
    );
    assert_eq!(
        rules("src/tools/port_forward.rs", text),
        ["a process started outside src/tools/mod.rs"; 2]
    );
    assert!(rules("src/tools/mod.rs", text).is_empty());
    assert!(
        rules(
            "src/main.rs",
            "fn main() -> std::process::ExitCode {\n    todo!()\n}\n"
        )
        .is_empty()
    );
}

#[test]
fn the_scan_catches_unwrap_outside_tests() {
    let text = "fn f(s: &str) -> u8 {\n    s.parse().unwrap()\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {\n        \"1\".parse::<u8>().unwrap();\n    }\n}\n";
    let found = check_file("src/config.rs", text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].line, found[0].rule),
        (2, ".unwrap() in non-test code")
    );
}

#[test]
fn the_scan_catches_undocumented_public_items() {
    let text = "/// Documented.\n#[derive(Debug)]\npub struct A {\n    /// Documented.\n    pub a: u8,\n    pub b: u8,\n}\n\npub fn f() {}\n\n#[allow(dead_code)]\npub const C: u8 = 1;\n";
    let found = check_file("src/x.rs", text);
    assert_eq!(
        found.iter().map(|v| v.line).collect::<Vec<_>>(),
        [6, 9, 12],
        "{found:?}"
    );
}

/// The top-level module of `src/` a file belongs to (`metrics` for `src/metrics/checks/hpa.rs`);
/// `None` for the crate roots.
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(stem) => Some(stem.to_string()),
        None => Some(first.to_string()),
    }
}

/// The top-level modules a file's code names through `crate::NAME` (also in
/// `crate::{a, b::C}` groups written on one line), among `modules`.
fn crate_uses(text: &str, modules: &[String]) -> Vec<(usize, String)> {
    let mut uses = Vec::new();
    for (n, line) in code_lines(text) {
        let code = without_strings(without_comment(line));
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim())
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let ident: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&ident) {
                    uses.push((n, ident));
                }
            }
        }
    }
    uses
}

/// The first import circle among top-level modules, as `a -> b -> a` with the place of each
/// step; `edges` are (from, to, place).
fn first_circle(edges: &[(String, String, String)]) -> Option<Vec<String>> {
    let modules: std::collections::BTreeSet<&String> =
        edges.iter().flat_map(|(a, b, _)| [a, b]).collect();
    for start in modules {
        // Depth-first search for a path from `start` back to itself.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), Vec::new())];
        let mut seen = std::collections::BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for (a, b, place) in edges.iter().filter(|(a, _, _)| *a == at) {
                let mut steps = path.clone();
                steps.push(format!("{a} -> {b} ({place})"));
                if b == start {
                    return Some(steps);
                }
                if seen.insert(b.clone()) {
                    stack.push((b.clone(), steps));
                }
            }
        }
    }
    None
}

/// The import edges between top-level modules of the crate whose sources are `files` (paths
/// relative to its `src/`, with their text).
fn module_edges(files: &[(PathBuf, String)]) -> Vec<(String, String, String)> {
    let mut modules: Vec<String> = files.iter().filter_map(|(p, _)| top_module(p)).collect();
    modules.sort();
    modules.dedup();
    let mut edges = Vec::new();
    for (path, text) in files {
        let Some(from) = top_module(path) else {
            continue;
        };
        for (line, to) in crate_uses(text, &modules) {
            if to != from && !edges.iter().any(|(a, b, _)| *a == from && *b == to) {
                edges.push((from.clone(), to, format!("{}:{line}", path.display())));
            }
        }
    }
    edges
}

#[test]
fn src_modules_import_each_other_without_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for src in [
        root.join("src"),
        root.join("server/src"),
        root.join("xtask/src"),
    ] {
        let files: Vec<(PathBuf, String)> = sources(&src)
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f).expect("read source");
                (f.strip_prefix(&src).expect("under src").to_path_buf(), text)
            })
            .collect();
        let edges = module_edges(&files);
        assert!(
            edges.len() > 3,
            "the scan found imports in {}: {edges:?}",
            src.display()
        );
        if let Some(circle) = first_circle(&edges) {
            panic!(
                "modules of {} import each other in a circle (ARCHITECTURE.md: no circles):\n  {}",
                src.display(),
                circle.join("\n  ")
            );
        }
    }
}

#[test]
fn the_scan_finds_an_import_circle() {
    let files = |b_uses: &str| {
        vec![
            (
                PathBuf::from("lib.rs"),
                "pub mod a;\npub mod b;\n".to_string(),
            ),
            (
                PathBuf::from("a.rs"),
                "use crate::b::Thing;\n// crate::c\n".to_string(),
            ),
            (PathBuf::from("b/mod.rs"), "mod inner;\n".to_string()),
            (
                PathBuf::from("b/inner.rs"),
                format!("fn f() {{ {b_uses} }}\n"),
            ),
            (
                PathBuf::from("c.rs"),
                "const S: &str = \"crate::a\";\n".to_string(),
            ),
        ]
    };
    let circle = first_circle(&module_edges(&files("crate::{c, a::X};"))).expect("a circle");
    assert_eq!(circle.len(), 2, "{circle:?}");
    assert!(circle[0].starts_with("a -> b (a.rs:1)"), "{circle:?}");
    assert!(circle[1].starts_with("b -> a (b/inner.rs:1)"), "{circle:?}");
    // Comments and strings name no module; a one-way import is no circle.
    assert_eq!(first_circle(&module_edges(&files("crate::c::f();"))), None);
}

/// The bullets of one `## Code map (`DIR`)` section of ARCHITECTURE.md: (first line, whole text).
fn code_map_bullets(map: &str, dir: &str) -> Vec<(String, String)> {
    let heading = format!("## Code map (`{dir}`)");
    let Some(start) = map.find(&heading) else {
        return Vec::new();
    };
    let section = &map[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut bullets: Vec<(String, String)> = Vec::new();
    for line in section.lines() {
        if let Some(item) = line.strip_prefix("- ") {
            bullets.push((item.to_string(), item.to_string()));
        } else if line.starts_with("  ")
            && let Some(last) = bullets.last_mut()
        {
            last.1.push('\n');
            last.1.push_str(line);
        } else if !line.starts_with("  ") && !line.trim().is_empty() {
            // A paragraph after the list ends the last bullet.
            bullets.push((String::new(), String::new()));
        }
    }
    bullets
}

/// The files under a crate's `src/` (relative paths) that its code map does not name: a file of
/// the crate root needs a bullet whose first line names it (`` `app.rs` ``), a directory's
/// `mod.rs` a bullet whose first line names the directory (`` `config/` ``), and a file inside a
/// directory must be named (`api_side.rs`, or `checks/` for a `mod.rs`) in its directory's bullet.
fn missing_from_map(bullets: &[(String, String)], files: &[PathBuf]) -> Vec<String> {
    let head_names = |needle: String| {
        bullets
            .iter()
            .filter(move |(head, _)| head.contains(needle.as_str()))
    };
    let mut missing = Vec::new();
    for f in files {
        let parts: Vec<&str> = f.iter().filter_map(|c| c.to_str()).collect();
        let named = match parts.as_slice() {
            [file] => head_names(format!("`{file}`")).next().is_some(),
            [dir, "mod.rs"] => head_names(format!("`{dir}/`")).next().is_some(),
            [dir, .., last] => {
                let needle = if *last == "mod.rs" {
                    format!("{}/", parts[parts.len() - 2])
                } else {
                    (*last).to_string()
                };
                head_names(format!("`{dir}/`")).any(|(_, text)| text.contains(&needle))
            }
            [] => true,
        };
        if !named {
            missing.push(f.display().to_string());
        }
    }
    missing
}

#[test]
fn the_code_map_names_every_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut all = Vec::new();
    // (the sources, the code map's heading)
    for (dir, heading) in [
        ("src/", "src/"),
        ("server/src/", "server/src/"),
        ("xtask/src/", "xtask/"),
    ] {
        let bullets = code_map_bullets(&map, heading);
        assert!(bullets.len() > 3, "ARCHITECTURE.md has a code map of {dir}");
        let src = root.join(dir);
        let files: Vec<PathBuf> = sources(&src)
            .into_iter()
            .map(|f| f.strip_prefix(&src).expect("under src").to_path_buf())
            .collect();
        all.extend(
            missing_from_map(&bullets, &files)
                .into_iter()
                .map(|f| format!("{dir}{f}")),
        );
    }
    assert!(
        all.is_empty(),
        "ARCHITECTURE.md's code map does not name these files; add each to its bullet:\n  {}",
        all.join("\n  ")
    );
}

/// What names one of the package's binaries to a test (`env!("CARGO_BIN_EXE_<name>")`), spelled
/// in two parts so that this file does not name one itself.
const BINARY_MARK: &str = concat!("CARGO_BIN", "_EXE_");

/// Test files that may name the binaries: the support layers, which start them with one
/// environment policy (tests/it/support/process.rs; server/tests/server/support.rs).
const BINARY_STARTERS: &[&str] = &["tests/it/support/", "server/tests/server/support.rs"];

/// A test that starts kscale or kscale-server itself, outside its support layer.
fn binaries_named_outside_support(path: &str, text: &str) -> Vec<Violation> {
    if BINARY_STARTERS.iter().any(|p| path.starts_with(p)) {
        return Vec::new();
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| without_comment(line).contains(BINARY_MARK))
        .map(|(i, _)| Violation {
            path: path.to_string(),
            line: i + 1,
            rule: "a binary started outside the tests' support layer",
        })
        .collect()
}

#[test]
fn tests_start_the_binaries_only_through_their_support_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = sources(&root.join("tests"));
    files.extend(sources(&root.join("server/tests")));
    assert!(files.len() > 30, "the scan found the tests: {files:?}");
    let mut all = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).expect("under the root");
        let rel = rel.to_string_lossy();
        let text = std::fs::read_to_string(&f).expect("read test source");
        all.extend(binaries_named_outside_support(&rel, &text));
    }
    assert!(
        all.is_empty(),
        "start kscale with support::kscale and the server with support::ServerProc:\n{}",
        all.iter()
            .map(|v| format!("  {}:{}: {}", v.path, v.line, v.rule))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_map_check_catches_a_missing_file() {
    let map = "## Code map (`src/`)\n\n- `app.rs`, `ui.rs`: things.\n- `metrics/`: checks in\n  `checks/` (`api_side.rs`).\n\nTests: `hpa.rs` here is prose.\n\n## Next\n";
    let bullets = code_map_bullets(map, "src/");
    let files: Vec<PathBuf> = [
        "app.rs",
        "ui.rs",
        "hpa.rs",
        "metrics/mod.rs",
        "metrics/checks/mod.rs",
        "metrics/checks/api_side.rs",
        "metrics/checks/hpa.rs",
        "config/mod.rs",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(
        missing_from_map(&bullets, &files),
        ["hpa.rs", "metrics/checks/hpa.rs", "config/mod.rs"]
    );
}

#[test]
fn the_scan_catches_a_binary_started_outside_support() {
    let text = format!(
        "fn f() {{\n    // env!(\"{BINARY_MARK}kscale\") in a comment\n    let _ = Command::new(env!(\"{BINARY_MARK}kscale\"));\n}}\n"
    );
    let found = binaries_named_outside_support("tests/it/load.rs", &text);
    assert_eq!(found.iter().map(|v| v.line).collect::<Vec<_>>(), [3]);
    assert!(binaries_named_outside_support("tests/it/support/process.rs", &text).is_empty());
}
