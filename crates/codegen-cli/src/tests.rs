use clap::CommandFactory;

use crate::Cli;

/// Every subcommand and every argument says what it is for in `--help`.
#[test]
fn every_command_and_argument_has_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_name() != "help" && sub.get_about().is_none() {
                missing.push(format!("{sub_path} (the command)"));
            }
            walk(sub, &sub_path, missing);
        }
    }
    let cli = Cli::command();
    cli.clone().debug_assert();
    let mut missing = Vec::new();
    walk(&cli, "codegen", &mut missing);
    assert!(missing.is_empty(), "no help for: {missing:#?}");
}

/// Flags with a fixed set of values list them (clap checks them and shows
/// them in `--help`).
#[test]
fn flags_with_fixed_choices_list_them() {
    let cli = Cli::command();
    let find = |path: &[&str], flag: &str| -> Vec<String> {
        let mut cmd = &cli;
        for name in path {
            cmd = cmd.find_subcommand(name).unwrap();
        }
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(flag))
            .unwrap_or_else(|| panic!("{path:?} has no --{flag}"));
        arg.get_possible_values()
            .iter()
            .map(|v| v.get_name().to_string())
            .collect()
    };
    for path in [
        &["complete"][..],
        &["lsp"],
        &["bench", "speed"],
        &["bench", "humaneval"],
        &["bench", "infill"],
    ] {
        assert_eq!(find(path, "device"), ["cpu", "cuda", "metal"], "{path:?}");
    }
    assert_eq!(
        find(&["bench", "humaneval"], "format"),
        ["chat", "continuation"]
    );
    assert_eq!(
        find(&["bench", "infill"], "mode"),
        ["single-line", "multi-line", "random-span"]
    );
    assert_eq!(
        find(&["complete"], "language"),
        [
            "python",
            "rust",
            "javascript",
            "typescript",
            "typescriptreact",
            "go"
        ]
    );
}

#[test]
fn seconds_are_numbers_or_durations() {
    use crate::parse_seconds;
    assert_eq!(parse_seconds("3"), Ok(3.0));
    assert_eq!(parse_seconds("0.5"), Ok(0.5));
    assert_eq!(parse_seconds("500ms"), Ok(0.5));
    assert_eq!(parse_seconds("1m 30s"), Ok(90.0));
    for bad in ["", "0", "-1", "nan", "3x", "0s"] {
        assert!(parse_seconds(bad).is_err(), "{bad}");
    }
}
