//! The committed man pages (`man/`) and shell completions (`completions/`)
//! must match what the clap definitions generate. Regenerate them with
//! `GOPROBE_BLESS=1 cargo test --test docs`.

use std::fs;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file: (path relative to the repo, contents).
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = goprobe::cmd::command();

    out.push((PathBuf::from("man/goprobe.1"), man_page(cmd.clone())));
    for sub in cmd.get_subcommands() {
        // clap wants 'static names; leaking a few bytes in a test is harmless.
        let name: &'static str = Box::leak(format!("goprobe-{}", sub.get_name()).into_boxed_str());
        let sub = sub.clone().name(name).display_name(name).bin_name(name);
        out.push((PathBuf::from(format!("man/{name}.1")), man_page(sub)));
    }

    for (shell, file) in [
        (Shell::Bash, "goprobe.bash"),
        (Shell::Zsh, "_goprobe"),
        (Shell::Fish, "goprobe.fish"),
        (Shell::Elvish, "goprobe.elv"),
        (Shell::PowerShell, "_goprobe.ps1"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "goprobe", &mut buf);
        out.push((PathBuf::from(format!("completions/{file}")), buf));
    }
    out
}

/// A man page from the clap definition. The `after_long_help` text is made of
/// blocks separated by blank lines, each starting with a `Title:` line (e.g.
/// `Exit status:`, `Output:`); each block becomes its own section with its
/// layout kept, instead of clap_mangen's catch-all EXTRA section.
fn man_page(cmd: clap::Command) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page).expect("title");
    man.render_name_section(&mut page).expect("name");
    man.render_synopsis_section(&mut page).expect("synopsis");
    man.render_description_section(&mut page)
        .expect("description");
    man.render_options_section(&mut page).expect("options");
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut page)
            .expect("subcommands");
    }
    if let Some(extra) = cmd.get_after_long_help() {
        let text = extra.to_string();
        let mut roff = roff::Roff::new();
        for block in text.split("\n\n") {
            let (title, body) = block.split_once('\n').unwrap_or((block, ""));
            roff.control("SH", [title.trim_end_matches(':').to_uppercase().as_str()]);
            roff.control("nf", []);
            for line in body.lines() {
                roff.text([roff::roman(line)]);
            }
            roff.control("fi", []);
        }
        roff.to_writer(&mut page).expect("extra sections");
    }
    if cmd.get_version().is_some() {
        man.render_version_section(&mut page).expect("version");
    }
    page
}

fn listed(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = fs::read_dir(repo().join(dir))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| dir.join(e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let files = generated();
    if std::env::var_os("GOPROBE_BLESS").is_some() {
        for dir in ["man", "completions"] {
            for stale in listed(Path::new(dir)) {
                fs::remove_file(repo().join(stale)).expect("remove stale generated file");
            }
        }
        for (path, contents) in &files {
            let full = repo().join(path);
            fs::create_dir_all(full.parent().expect("has parent")).expect("mkdir");
            fs::write(full, contents).expect("write generated file");
        }
        return;
    }
    let mut stale = Vec::new();
    for (path, contents) in &files {
        match fs::read(repo().join(path)) {
            Ok(committed) if &committed == contents => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    let mut expected: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    expected.sort();
    for dir in ["man", "completions"] {
        for extra in listed(Path::new(dir)) {
            if !expected.contains(&extra) {
                stale.push(format!("{} (no longer generated)", extra.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated docs are out of date: {stale:?}\nregenerate with: GOPROBE_BLESS=1 cargo test --test docs"
    );
}
