//! Shell completion scripts and man pages, generated from the clap types (clap_complete,
//! clap_mangen). The scripts complete commands and flags statically, and pod and member names
//! dynamically: they ask `podctl __complete pods` (or `members POD`), which lists them from
//! containerd at the moment of the <TAB>.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, CompletionShell};

/// The commands whose first argument is a pod name.
const POD_COMMANDS: &[&str] = &[
    "describe", "logs", "delete", "exec", "attach", "stop", "start", "restart", "wait", "top", "cp", "kube",
];

/// The completion script for `shell`: clap's, plus the dynamic names.
pub fn script(shell: CompletionShell) -> Vec<u8> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    let clap_shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(clap_shell, &mut command, "podctl", &mut out);
    let pods = POD_COMMANDS.join("|");
    let extra = match shell {
        CompletionShell::Bash => format!(
            r#"
# Pod and member names come from containerd when <TAB> is pressed.
_podctl_names() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" i pod=""
    case "${{COMP_WORDS[1]}}" in
        {pods}|get)
            for ((i = 2; i < COMP_CWORD; i++)); do
                case "${{COMP_WORDS[i]}}" in -*) ;; pods|pod|po) ;; *) pod="${{COMP_WORDS[i]}}"; break ;; esac
            done
            if [[ "$prev" == "-c" || "$prev" == "--container" ]]; then
                COMPREPLY=($(compgen -W "$(podctl __complete members "$pod" 2>/dev/null)" -- "$cur"))
                return 0
            fi
            if [[ "$cur" != -* && -z "$pod" ]]; then
                COMPREPLY=($(compgen -W "$(podctl __complete pods 2>/dev/null)" -- "$cur"))
                return 0
            fi
            ;;
    esac
    _podctl "$@"
}}
complete -F _podctl_names -o bashdefault -o default podctl
"#
        ),
        CompletionShell::Fish => {
            let commands = POD_COMMANDS.join(" ");
            format!(
                r#"
# Pod and member names come from containerd when <TAB> is pressed.
complete -c podctl -n "__fish_seen_subcommand_from {commands}" -f -a "(podctl __complete pods 2>/dev/null)"
complete -c podctl -n "__fish_seen_subcommand_from {commands}; and __fish_seen_argument -s c -l container" -f -a "(podctl __complete members (commandline -opc)[3] 2>/dev/null)"
"#
            )
        }
        CompletionShell::Zsh => format!(
            r#"
# Pod names come from containerd when <TAB> is pressed.
_podctl_with_names() {{
    if (( CURRENT == 3 )) && [[ "${{words[2]}}" == ({pods}) && "${{words[CURRENT]}}" != -* ]]; then
        compadd -- ${{(f)"$(podctl __complete pods 2>/dev/null)"}}
        return
    fi
    _podctl "$@"
}}
compdef _podctl_with_names podctl
"#
        ),
    };
    out.extend_from_slice(extra.as_bytes());
    out
}

/// Writes `podctl.1` and a page per subcommand (`podctl-create.1`, ...) into `dir`.
pub fn write_man_pages(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let command = Cli::command();
    let mut written = Vec::new();
    let mut pages = vec![("podctl".to_string(), command.clone())];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("podctl-{}", sub.get_name());
        pages.push((name, sub.clone()));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)?;
        clap_mangen::Man::new(page)
            .title(name.to_uppercase())
            .render(&mut file)?;
        file.flush()?;
        written.push(path);
    }
    Ok(written)
}

/// The main man page, for `podctl man` without a directory.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}
