//! Man pages and shell completions generated from a binary's clap definition, for the
//! Debian package (`cargo xtask dist`). Included by both binaries (`#[path]`).

use std::path::Path;

/// Writes `man/<name>.<section>` (and one page per subcommand) and
/// `completions/{<name>.bash, _<name>, <name>.fish}` under `dir`. `extra` is roff
/// appended to the command's own page: the sections clap does not know (signals,
/// files, exit status, environment, examples).
pub(crate) fn generate(
    cmd: &clap::Command,
    section: &str,
    dir: &Path,
    extra: &str,
) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut cmd = cmd.clone();
    cmd.build();
    write_pages(&cmd, cmd.get_name(), section, &man, extra)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let name = cmd.get_name().to_owned();
        clap_complete::generate_to(shell, &mut cmd, name, &completions)?;
    }
    Ok(())
}

fn write_pages(
    cmd: &clap::Command,
    name: &str,
    section: &str,
    dir: &Path,
    extra: &str,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section(section)
        .render(&mut out)?;
    out.extend_from_slice(extra.as_bytes());
    std::fs::write(dir.join(format!("{name}.{section}")), out)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), section, dir, "")?;
    }
    Ok(())
}
