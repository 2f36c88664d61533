//! `alertissimo check`: exit 0 when valid, 78 with every problem named when not.

use crate::common::{BIN, Install, repo, text};

#[test]
fn shipped_configuration_is_valid() {
    let out = std::process::Command::new(BIN)
        .args(["check", "--no-environment", "--config"])
        .arg(repo().join("config.example.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(
            "6 connectors (demarches-simplifiees, export-xml, osiris-suivi, portail-aides, progos-export, scdl-subventions)"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn an_api_token_that_cannot_be_read_is_named_without_its_value() {
    let install = Install::with_connector(|_| {
        "kind = \"http_json\"\n[source]\nurl = \"https://api.example.org/dossiers\"\nrecords = \"/data\"\n\
         [source.auth]\nkind = \"bearer\"\ntoken_env = \"REGION_CHECK_NO_SUCH_TOKEN\"\n\
         [fields]\nid = \"/id\"\nstep = \"/etat\"\n[steps]\n\"Déposé\" = \"depose\"\n"
            .to_owned()
    });
    let out = install.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains(
            "auth.token_env: the environment variable REGION_CHECK_NO_SUCH_TOKEN is not set"
        ),
        "{}",
        text(&out)
    );
    // Set, the token is read but never shown.
    let out = install
        .cmd(&["check"])
        .env("REGION_CHECK_NO_SUCH_TOKEN", "s3cret-value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("s3cret-value"));
    assert!(install.run(&["check", "--no-environment"]).status.success());
}

#[test]
fn valid_installation_passes_with_its_environment() {
    let install = Install::new();
    let out = install.run(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!install.db().exists(), "check must not create the database");
}

#[test]
fn every_connector_problem_is_listed_with_line_and_column() {
    let install = Install::with_connector(|c| {
        c.replace(
            "\"Voté en CP\" = \"accorde\"",
            "\"Voté en CP\" = \"acorde\"",
        )
        .replace(
            "amount_granted = { column = \"Montant voté\", format = \"auto\" }",
            "amount_granted = { column = \"Montant voté\", format = \"euros\" }",
        )
        .replace("schedule = \"* * * * * *\"", "schedule = \"every day\"")
    });
    let out = install.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let all = text(&out);
    for needle in [
        "portail.toml:3:12: schedule 'every day' is not a cron pattern",
        "portail.toml:21:1: field 'amount_granted': amount format 'euros'",
        "portail.toml:27:16: 'acorde' is not a step of",
        "(did you mean 'accorde'?)",
        "3 problems found",
    ] {
        assert!(all.contains(needle), "{needle:?} not in:\n{all}");
    }
}

#[test]
fn unknown_connector_key_is_rejected() {
    let install =
        Install::with_connector(|c| c.replace("after_import", "delimeter = \";\"\nafter_import"));
    let out = install.run(&["check"]);
    assert_eq!(out.status.code(), Some(78));
    let all = text(&out);
    assert!(
        all.contains("portail.toml: TOML parse error at line 9, column 1"),
        "{all}"
    );
    assert!(all.contains("unknown field `delimeter`"), "{all}");
}

#[test]
fn configuration_problems_name_key_and_source() {
    let install = Install::new();
    let mut config = std::fs::read_to_string(install.config()).unwrap();
    config.push_str("[guards]\nmax_rejected_ratio = 3\n[log]\nformat = \"yaml\"\n");
    std::fs::write(install.config(), config).unwrap();
    let out = install
        .cmd(&["check"])
        .env("ALERTISSIMO_TIMEZONE", "Paris")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let all = text(&out);
    let file = install.config().display().to_string();
    for needle in [
        format!("{file}: key `guards.max_rejected_ratio`: 3 is not a ratio"),
        format!("{file}: key `log.format`: 'yaml' is not one of"),
        "environment variable ALERTISSIMO_TIMEZONE: key `timezone`: 'Paris' is not an IANA time zone".to_owned(),
    ] {
        assert!(all.contains(&needle), "{needle:?} not in:\n{all}");
    }
    // Every command refuses to run on an invalid configuration.
    let out = install
        .cmd(&["import", "portail"])
        .env("ALERTISSIMO_TIMEZONE", "Paris")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn environment_overrides_the_file() {
    let install = Install::new();
    let out = install
        .cmd(&["check", "--no-environment"])
        .env("ALERTISSIMO_CONNECTORS_DIR", "/nonexistent/connectors")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out).contains("/nonexistent/connectors: cannot read the connectors folder"),
        "{}",
        text(&out)
    );
}

#[test]
fn missing_configuration_file_is_named() {
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", "/nonexistent/alertissimo.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out).contains("/nonexistent/alertissimo.toml: cannot read the configuration file")
    );
}

#[test]
fn misspelt_environment_variable_is_reported() {
    let install = Install::new();
    let out = install
        .cmd(&["check", "--no-environment"])
        .env("ALERTISSIMO_STORE__PTH", "/tmp/x.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let all = text(&out);
    assert!(
        all.contains("environment variable ALERTISSIMO_STORE__PTH: key `store.pth`: unknown key (did you mean `store.path`?)"),
        "{all}"
    );
}

#[test]
fn secret_files_readable_by_others_are_warned_of_and_secrets_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let install = Install::with_connector(|_| {
        "kind = \"http_json\"\nschedule = \"* * * * * *\"\n[source]\nurl = \"http://127.0.0.1:9/dossiers\"\n\
         records = \"/data\"\ntimeout = \"1s\"\nretries = 0\n\
         [source.auth]\nkind = \"bearer\"\ntoken_file = \"../api-token\"\n\
         [source.secret_headers]\n\"X-Api-Key\" = { file = \"../api-key\" }\n\
         [fields]\nid = \"/id\"\nstep = \"/etat\"\n[steps]\n\"Déposé\" = \"depose\"\n"
            .to_owned()
    });
    install.append_config(
        "[delivery]\ntransport = \"smtp\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nusername = \"aides\"\n\
         password_file = \"smtp-password\"\nfrom = \"Région <aides@region.example.org>\"\n",
    );
    let (token, password, key) = ("t0ken-4f7c9e", "p4ss-b81d2a", "k3y-9d1e07");
    let token_file = install.root().join("api-token");
    let password_file = install.root().join("smtp-password");
    let key_file = install.root().join("api-key");
    std::fs::write(&token_file, token).unwrap();
    std::fs::write(&password_file, password).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(&token_file, 0o644);
    chmod(&password_file, 0o644);
    chmod(&key_file, 0o644);
    chmod(&install.config(), 0o640);
    let out = install.run(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    // Relative paths are shown as the files they come from resolve them.
    let shown_token = install.root().join("connectors/../api-token");
    let shown_key = install.root().join("connectors/../api-key");
    for (path, key) in [
        (&shown_token, "auth.token_file of connector portail"),
        (
            &shown_key,
            "secret_headers 'X-Api-Key' of connector portail",
        ),
        (&password_file, "smtp.password_file"),
    ] {
        assert!(
            said.contains(&format!(
                "warning: {} ({key}) is readable by every user of this machine (mode 0644)",
                path.display()
            )),
            "{said}"
        );
    }
    assert!(!said.contains("(the configuration)"), "{said}");
    // Once fixed, nothing to say.
    chmod(&token_file, 0o600);
    chmod(&password_file, 0o600);
    chmod(&key_file, 0o600);
    let said = text(&install.run(&["check"]));
    assert!(!said.contains("readable by every user"), "{said}");

    // Neither `check`, nor an import that fails, nor the daemon at debug level,
    // ever shows a secret's value.
    let mut outputs = vec![said, text(&install.run(&["import", "portail"]))];
    let mut daemon = crate::common::Daemon(
        install
            .cmd(&["run"])
            .env("ALERTISSIMO_LOG__LEVEL", "debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    crate::common::terminate(&mut daemon.0);
    let mut logs = String::new();
    for stream in [
        daemon
            .0
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read>),
        daemon
            .0
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        std::io::Read::read_to_string(&mut stream, &mut logs).unwrap();
    }
    assert!(
        logs.contains("127.0.0.1:9"),
        "the daemon did not try the API: {logs}"
    );
    outputs.push(logs);
    for output in outputs {
        for secret in [token, password, key] {
            assert!(!output.contains(secret), "{secret} shown in:\n{output}");
        }
    }
}

#[test]
fn completions_and_the_manual_page_need_no_configuration() {
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .args(["--config", "/nonexistent/config.toml"])
            .output()
            .unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success(), "{}", text(&bash));
    let bash = String::from_utf8(bash.stdout).unwrap();
    for word in ["_alertissimo", "evaluate", "report", "purge"] {
        assert!(
            bash.contains(word),
            "{word} missing from the bash completions"
        );
    }
    let man = run(&["manpage"]);
    assert!(man.status.success(), "{}", text(&man));
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.contains(".TH alertissimo"), "{man}");
    assert!(man.contains("evaluate"), "{man}");
    // Anything else does need it.
    assert_eq!(run(&["check"]).status.code(), Some(78));
}
