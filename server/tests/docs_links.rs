//! Every relative link (and `#anchor`) in the README and `docs/` resolves.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use common::docs::root;

/// The Markdown files the link check covers: the README and `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// The lines outside fenced code blocks, with inline code removed.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut s = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                s.push(c);
            }
        }
        out.push((i + 1, s));
    }
    out
}

/// GitHub's anchors of a Markdown file's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_default();
        out.insert(if *n == 0 { slug.clone() } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

/// The targets of `[text](target)` links and `[label]: target` definitions.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let t = line.trim_start();
    if t.starts_with('[')
        && let Some((_, rest)) = t.split_once("]:")
    {
        if let Some(target) = rest.split_whitespace().next() {
            out.push(target.to_owned());
        }
        return out;
    }
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = j;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.to_owned());
        rest = &after[end.min(after.len())..];
    }
    out
}

#[test]
fn relative_links_and_anchors_resolve() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = fs::read_to_string(&file).expect("read");
        let rel = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
        for (line, prose) in prose_lines(&text) {
            for target in link_targets(&prose) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let dest =
                    if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
                if !dest.exists() {
                    errors
                        .push(format!("{rel}:{line}: {target}: {} does not exist", dest.display()));
                    continue;
                }
                if anchor.is_empty() || dest.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                let dest_text = fs::read_to_string(&dest).expect("read link target");
                if !anchors(&dest_text).contains(anchor) {
                    errors.push(format!(
                        "{rel}:{line}: {target}: no heading with anchor #{anchor} in {}",
                        dest.display()
                    ));
                }
            }
        }
    }
    println!("{checked} relative links checked");
    assert!(errors.is_empty(), "broken links:\n{}", errors.join("\n"));
}
