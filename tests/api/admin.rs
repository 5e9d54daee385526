//! Admin commands through the real binary: init, onboarding, member import; exit codes and messages.
use crate::helpers::*;
use std::process::Command;

#[track_caller]
fn assert_success(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn gateway(app: &TestApp) -> Command {
    cli(app)
}

#[tokio::test]
async fn good_lines_are_imported_and_bad_ones_reported_by_line() {
    let app = spawn_app().await;
    let file = app.home.path().join("members.csv");
    std::fs::write(
        &file,
        "card_no,tier,status,birth_month,opening_points,phone\n\
         9900000001,银卡,active,4,500,13911112222\n\
         9900000002,diamond,active,,0,\n\
         9900000003,gold,sleeping,,0,\n\
         9900000004,gold,active,13,0,\n\
         9900000005,gold,active,,-5,\n\
         9900000006,gold,active,,0,12345\n\
         9900000001,gold,active,,0,\n\
         9900000007,regular,active,,0,13911112222\n\
         12,gold,active,,0,\n",
    )
    .unwrap();
    let report = app.home.path().join("report.csv");
    let out = gateway(&app)
        .arg("import-members")
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(&report).unwrap();
    assert_eq!(
        report,
        "line,error\n\
         3,\"tier: unknown tier \"\"diamond\"\" (expected regular, silver, gold, platinum or 普通, 银卡, 金卡, 铂金卡)\"\n\
         4,\"status: unknown status \"\"sleeping\"\" (expected active, frozen or closed)\"\n\
         5,\"birth_month: \"\"13\"\" is not a month 1 to 12\"\n\
         6,\"opening_points: \"\"-5\"\" is not a whole number 0 to 1000000000\"\n\
         7,\"phone: phone must be a mainland mobile number (11 digits, optional +86) or an international number\"\n\
         8,\"card_no: duplicate of line 2\"\n\
         9,\"phone: same phone as line 2\"\n\
         10,\"card_no: card_no must be 6 to 32 letters or digits\"\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line,error"),
        "the report also goes to stderr"
    );
    // The one good line is in, with its opening balance in the ledger, and the ledger balances.
    let rst = app.partner("P-RST-001");
    let body = rst.verify_card("9900000001").await.json();
    assert_eq!(body["tier"], "silver");
    assert_eq!(body["benefits"]["points_balance"], 500);
    let mut conn = app.conn();
    assert_eq!(
        alliance_gateway::db::ledger::Ledger::total(&mut conn).unwrap(),
        0
    );
}

/// What Excel and most CRM exports write: CRLF line endings. The report names the file's own
/// line numbers, as for LF files (line 1 is the header).
#[tokio::test]
async fn rejected_lines_of_a_crlf_file_are_named_by_the_files_own_line() {
    let app = spawn_app().await;
    let file = app.home.path().join("members-crlf.csv");
    std::fs::write(
        &file,
        "card_no,tier,status,birth_month,opening_points,phone\r\n\
         9900000101,gold,active,,0,\r\n\
         9900000102,diamond,active,,0,\r\n\
         9900000103,gold,active,,0,\r\n\
         9900000104,gold,active,13,0,\r\n\
         9900000101,gold,active,,0,\r\n\
         \"9900000105\",\"gold\",\"sleeping\",,0,\r\n",
    )
    .unwrap();
    let report = app.home.path().join("report-crlf.csv");
    let out = gateway(&app)
        .arg("import-members")
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = report
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(lines, ["3", "5", "6", "7"], "{report}");
    assert!(
        report.contains("6,\"card_no: duplicate of line 2\""),
        "{report}"
    );
}

#[tokio::test]
async fn reimports_update_tier_and_status_but_never_balances() {
    let app = spawn_app().await;
    let file = app.home.path().join("again.csv");
    std::fs::write(&file, "card_no,tier,status,birth_month,opening_points,phone\n8800123456,platinum,frozen,5,999999,13800138000\n").unwrap();
    let out = gateway(&app)
        .arg("import-members")
        .arg(&file)
        .output()
        .unwrap();
    assert_success(&out);
    let body = app.partner("P-RST-001").verify_card(GOLD_CARD).await.json();
    assert_eq!(body["tier"], "platinum");
    assert_eq!(body["status"], "frozen");
    assert_eq!(
        body["benefits"]["points_balance"], 1200,
        "the opening balance is never re-applied"
    );
    // Idempotent: the same file again changes nothing.
    let ledger = app.count("ledger_entries");
    let out = gateway(&app)
        .arg("import-members")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("0 created, 0 updated, 1 unchanged, 0 rejected"));
    assert_eq!(app.count("ledger_entries"), ledger);
}

#[tokio::test]
async fn unusable_files_exit_2_and_import_nothing() {
    let app = spawn_app().await;
    let members = app.count("members");
    for (name, contents, message) in [
        ("wrong-header.csv", &b"card,tier\n8800000001,gold\n"[..], "line 1: the header must be exactly card_no,tier,status,birth_month,opening_points,phone"),
        ("empty.csv", &b"card_no,tier,status,birth_month,opening_points,phone\n"[..], "the file has no data rows"),
        ("latin1.csv", &b"card_no,tier,status,birth_month,opening_points,phone\n8800000001,\xe9,active,,0,\n"[..], "the file is not UTF-8"),
    ] {
        let file = app.home.path().join(name);
        std::fs::write(&file, contents).unwrap();
        let out = gateway(&app).arg("import-members").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(stderr.contains("nothing was imported"), "{name}: {stderr}");
    }
    assert_eq!(app.count("members"), members);
}

#[tokio::test]
async fn onboarding_a_bad_spec_names_file_line_and_key_and_registers_nothing() {
    let app = spawn_app().await;
    let spec = app.home.path().join("bad.toml");
    let src = std::fs::read_to_string(root().join("partner-specs/P-GYM-001.toml"))
        .unwrap()
        .replace("P-GYM-001", "P-GYM-002")
        .replace("commission_bps = 300", "commission_bps = 30000");
    std::fs::write(&spec, src).unwrap();
    let partners = app.count("partners");
    let out = gateway(&app)
        .arg("onboard-partner")
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "{}:22: settlement.commission_bps: out of range: must be 0 to 10000",
            spec.display()
        )
    );
    assert_eq!(app.count("partners"), partners);
}

#[tokio::test]
async fn re_onboarding_changes_nothing_unless_the_offer_changes_for_a_future_day() {
    let app = spawn_app().await;
    let spec = root().join("partner-specs/P-RST-001.toml");
    let bundle_cert =
        std::fs::read(app.settings.bundles_dir().join("P-RST-001/client.pem")).unwrap();
    let out = gateway(&app)
        .arg("onboard-partner")
        .arg(&spec)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("offer unchanged"));
    assert_eq!(
        std::fs::read(app.settings.bundles_dir().join("P-RST-001/client.pem")).unwrap(),
        bundle_cert
    );

    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let changed = app.home.path().join("rst-v2.toml");
    let src = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &changed,
        src.replace("commission_bps = 200", "commission_bps = 250"),
    )
    .unwrap();
    let out = gateway(&app)
        .arg("onboard-partner")
        .arg(&changed)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a changed offer must start on a future day"
    );
    std::fs::write(
        &changed,
        src.replace("commission_bps = 200", "commission_bps = 250")
            .replace(
                "effective_from = \"2026-11-01\"",
                &format!("effective_from = \"{tomorrow}\""),
            ),
    )
    .unwrap();
    let out = gateway(&app)
        .arg("onboard-partner")
        .arg(&changed)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("new offer version:   2"));
    // Today's verify still answers with version 1.
    assert_eq!(
        app.partner("P-RST-001").verify_card(GOLD_CARD).await.json()["offer_version"],
        1
    );
}

#[tokio::test]
async fn init_refuses_to_replace_a_ca_without_force_and_keeps_member_keys_with_it() {
    let app = spawn_app().await;
    let paths = app.paths();
    let ca_before = std::fs::read(paths.ca_cert()).unwrap();
    let member_key_before = std::fs::read(paths.member_ref_key()).unwrap();
    let out = gateway(&app).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a CA already exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(paths.ca_cert()).unwrap(), ca_before);

    let out = gateway(&app).arg("init").arg("--force").output().unwrap();
    assert_success(&out);
    assert_ne!(
        std::fs::read(paths.ca_cert()).unwrap(),
        ca_before,
        "--force makes a new CA"
    );
    assert_eq!(
        std::fs::read(paths.member_ref_key()).unwrap(),
        member_key_before,
        "member-data keys are never replaced"
    );
    use std::os::unix::fs::PermissionsExt;
    for secret in [
        paths.ca_key(),
        paths.server_key(),
        paths.gateway_signing_key(),
        paths.member_ref_key(),
        paths.phone_key(),
    ] {
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", secret.display());
    }
    // The old gateway key stays listed, retired, so old receipts still verify.
    let mut conn = app.conn();
    let keys = alliance_gateway::alliance::gateway_jwks(&mut conn).unwrap();
    let statuses: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.contains(&"retired") && statuses.contains(&"active"));
}

#[tokio::test]
async fn config_prints_effective_values_with_secrets_redacted() {
    let app = spawn_app().await;
    let out = gateway(&app)
        .arg("config")
        .env(
            "ALLIANCE_DATABASE_URL",
            "postgres://gw:hunter2@db.internal/alliance",
        )
        .env("ALLIANCE_TIMEZONE", "Asia/Tokyo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("ALLIANCE_DATABASE_URL = \"postgres://gw:REDACTED@db.internal/alliance\""),
        "{text}"
    );
    assert!(
        text.contains("ALLIANCE_TIMEZONE = \"Asia/Tokyo\""),
        "{text}"
    );
    let out = gateway(&app)
        .arg("config")
        .env("ALLIANCE_DATABASE_URL", "mysql://x/y")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("only sqlite:// and postgres:// URLs are accepted"));
}
