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
