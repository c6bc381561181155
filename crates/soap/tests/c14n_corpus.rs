//! Byte-for-byte comparison of our canonicalization with libxml2 on `tests/c14n-corpus`.
//!
//! Whole documents are checked against `xmllint --c14n` / `--exc-c14n` (libxml2-utils) and, for
//! every mode, against lxml (libxml2 through Python, `tests/support/c14n_reference.py`), which
//! also canonicalizes the subtree of every non-root element. A missing tool fails the test.

use base64::Engine;
use qaqpa_soap::c14n::{C14nMethod, Canonicalizer};
use qaqpa_soap::xml::{parse, XmlLimits};
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c14n-corpus")
}

fn python() -> String {
    std::env::var("QAQPA_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    let output = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {what}: {e}. Install it (Debian libxml2-utils; PyPI lxml)")
    });
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn modes(prefixes: &[String]) -> Vec<(&'static str, Canonicalizer)> {
    let mut m = vec![
        ("inc", Canonicalizer::new(C14nMethod::Inclusive)),
        (
            "inc-c",
            Canonicalizer::new(C14nMethod::InclusiveWithComments),
        ),
        ("exc", Canonicalizer::new(C14nMethod::Exclusive)),
        (
            "exc-c",
            Canonicalizer::new(C14nMethod::ExclusiveWithComments),
        ),
    ];
    if !prefixes.is_empty() {
        m.push((
            "excp",
            Canonicalizer::new(C14nMethod::Exclusive)
                .with_inclusive_prefixes(prefixes.iter().cloned()),
        ));
        m.push((
            "excp-c",
            Canonicalizer::new(C14nMethod::ExclusiveWithComments)
                .with_inclusive_prefixes(prefixes.iter().cloned()),
        ));
    }
    m
}

struct CorpusFile {
    name: String,
    path: PathBuf,
    text: String,
    prefixes: Vec<String>,
}

fn run_with_stdin(cmd: &mut Command, input: &[u8], what: &str) -> Vec<u8> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .expect("write to the reference script");
    }
    let output = child.wait_with_output().expect("reference script runs");
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn corpus_canonicalizes_byte_identical_to_libxml2() {
    let dir = corpus_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 50,
        "the corpus must hold at least 50 documents, has {}",
        paths.len()
    );
    let files: Vec<CorpusFile> = paths
        .into_iter()
        .map(|path| CorpusFile {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            text: std::fs::read_to_string(&path).expect("corpus file is UTF-8"),
            prefixes: std::fs::read_to_string(path.with_extension("prefixes"))
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            path,
        })
        .collect();
    let docs: Vec<_> = files
        .iter()
        .map(|f| {
            parse(&f.text, &XmlLimits::default())
                .unwrap_or_else(|e| panic!("{}: our reader refused it: {e}", f.name))
        })
        .collect();

    let mut failures = Vec::new();
    let mut compared = 0usize;
    let mut check = |name: &str, what: &str, expected: &[u8], ours: &[u8]| {
        compared += 1;
        if ours != expected {
            failures.push(format!(
                "{name} {what}:\n  libxml2: {}\n  ours:    {}",
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(ours)
            ));
        }
    };

    // xmllint: whole documents, comments kept.
    for (file, doc) in files.iter().zip(&docs) {
        let modes = modes(&file.prefixes);
        for (flag, mode) in [("--c14n", "inc-c"), ("--exc-c14n", "exc-c")] {
            let expected = run(Command::new("xmllint").arg(flag).arg(&file.path), "xmllint");
            let ours = modes
                .iter()
                .find(|(m, _)| *m == mode)
                .map(|(_, c)| c.document(doc));
            check(
                &file.name,
                &format!("xmllint {flag}"),
                &expected,
                &ours.unwrap_or_default(),
            );
        }
    }

    // lxml: every mode, each document and each element's subtree, in one Python run.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/c14n_reference.py");
    let list: String = files
        .iter()
        .map(|f| format!("{}\t{}\n", f.path.display(), f.prefixes.join(" ")))
        .collect();
    let listing = run_with_stdin(
        Command::new(python()).arg(&script),
        list.as_bytes(),
        "python3 tests/support/c14n_reference.py (needs PyPI lxml)",
    );
    for line in String::from_utf8_lossy(&listing).lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [index, what, mode, b64] = parts.as_slice() else {
            panic!("unexpected reference line {line:?}");
        };
        let index: usize = index.parse().expect("file index");
        let (file, doc) = (&files[index], &docs[index]);
        let expected = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("reference is base64");
        let modes = modes(&file.prefixes);
        let canon = &modes.iter().find(|(m, _)| m == mode).expect("known mode").1;
        let ours = if *what == "doc" {
            canon.document(doc)
        } else {
            let n: usize = what.parse().expect("element index");
            let element = doc
                .descendants()
                .filter(|n| n.is_element())
                .nth(n)
                .unwrap_or_else(|| panic!("{}: lxml sees more elements than we do", file.name));
            canon.subtree(element)
        };
        check(&file.name, &format!("{what} {mode}"), &expected, &ours);
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} canonical forms differ from libxml2:\n{}",
        failures.len(),
        failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(compared > 1000, "only {compared} comparisons were made");
}
