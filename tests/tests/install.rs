//! `cargo xtask install --prefix DIR` (issue 13): the installed binary
//! runs, its man page renders with `man -l`, and its bash completion loads
//! and completes options. Runs the xtask that `cargo xtask test` is (it
//! passes itself as `XTASK_BIN`) with the wstap it built.

use std::process::Command;

#[test]
fn install_puts_a_working_binary_man_page_and_completions_under_the_prefix() {
    let Some(xtask) = std::env::var_os("XTASK_BIN") else {
        if std::env::var_os("CI").is_some() {
            panic!("XTASK_BIN unset in CI: run the tests with `cargo xtask test`");
        }
        tests::skip(
            "install_puts_a_working_binary_man_page_and_completions_under_the_prefix",
            "XTASK_BIN unset: run through `cargo xtask test`",
        );
        return;
    };
    let prefix = std::env::temp_dir().join(format!("wstap-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    let out = Command::new(&xtask)
        .arg("install")
        .arg("--prefix")
        .arg(&prefix)
        .arg("--wstap-bin")
        .arg(tests::wstap_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bin = prefix.join("bin/wstap");
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("wstap {}", env!("CARGO_PKG_VERSION"))
    );
    // The same file as the one built: the eBPF programs ride inside it.
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(tests::wstap_bin()).unwrap()
    );

    if tests::require_tool("install_man_page", "man") {
        let man = Command::new("man")
            .arg("-l")
            .arg(prefix.join("share/man/man1/wstap.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(
            man.status.success(),
            "{}",
            String::from_utf8_lossy(&man.stderr)
        );
        let page = String::from_utf8_lossy(&man.stdout);
        for wanted in [
            "NAME",
            "SYNOPSIS",
            "--interface",
            "--attach",
            "--file-size",
            "--cleanup",
        ] {
            assert!(page.contains(wanted), "man page lacks {wanted}:\n{page}");
        }
        assert!(
            !page.contains("--generate-man"),
            "hidden options stay hidden"
        );
    }

    // Load the bash completion and complete `wstap --att`.
    let script = format!(
        "source '{}' && complete -p wstap && COMP_WORDS=(wstap --att) && COMP_CWORD=1 \
         && _wstap wstap --att wstap && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        prefix
            .join("share/bash-completion/completions/wstap")
            .display()
    );
    let bash = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        bash.status.success(),
        "{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    let said = String::from_utf8_lossy(&bash.stdout);
    assert!(said.contains("-F _wstap wstap"), "{said}");
    assert!(said.lines().any(|l| l == "--attach"), "{said}");
    for shell_file in [
        "zsh/site-functions/_wstap",
        "fish/vendor_completions.d/wstap.fish",
    ] {
        let text = std::fs::read_to_string(prefix.join("share").join(shell_file)).unwrap();
        assert!(
            text.contains("interface") && text.contains("attach"),
            "{shell_file}"
        );
    }
    let _ = std::fs::remove_dir_all(&prefix);
}
