//! End to end on the lab: the content policy on both channels. What must be refused is
//! refused with its reason; what is clean still crosses byte for byte; personal data in a
//! CSV arrives masked; a policy file changed under a running node is reloaded, an invalid
//! one refused.

use crate::common;

use common::*;
use std::fs;

fn elf() -> Vec<u8> {
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
    elf.resize(4096, 0);
    elf
}

#[test]
fn outbound_content_rules_refuse_what_they_must_and_clean_files_cross_unchanged() {
    let lab = Lab::new(21500);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let id1 = resident_id("11010519900307123");
    let id2 = resident_id("22010219851111002");
    let csv = format!("姓名,身份证号,备注\n张三,{id1},无\n李四,{id2},电话 13800138000\n");
    let gbk = encoding_rs::GB18030
        .encode("民事判决书\n原告：某某公司，被告：某某有限公司。\n")
        .0
        .into_owned();
    let clean: Vec<(&str, Vec<u8>)> = vec![
        (
            "民事判决书（2026）吉01民初123号.pdf",
            pdf_of("Judgment of first instance", ""),
        ),
        ("现场照片.png", PNG_1X1.to_vec()),
        (
            "说明.docx",
            docx_of(&["民事判决书", "本案系侵犯商业秘密纠纷，依法公开审理。"]),
        ),
        (
            "中文说明.txt",
            "立案信息：本院已受理。\n".as_bytes().to_vec(),
        ),
        ("gbk-通知.txt", gbk),
        // text whose first letters spell a short signature (LLVM bitcode's, BMP's)
        ("BCD-清单.csv", "BCD,数量\n甲,2\n".as_bytes().to_vec()),
        ("BM庭审备忘.txt", "BM 7 号法庭备忘\n".as_bytes().to_vec()),
    ];
    for (name, bytes) in &clean {
        lab.publish("court", "to-internet", name, bytes);
    }
    lab.publish("court", "to-internet", "报告.pdf", &elf());
    // a head DOS would run, however much it reads like text
    lab.publish(
        "court",
        "to-internet",
        "MZ-说明.txt",
        "MZ-2026 号说明\n".as_bytes(),
    );
    // text for its first 8 KiB, a program after them: read to its end, refused
    let mut smuggled = encoding_rs::GB18030
        .encode(&"本院依法组成合议庭，公开开庭审理了本案。\r\n".repeat(300))
        .0
        .into_owned();
    smuggled.extend_from_slice(&elf());
    lab.publish("court", "to-internet", "开庭笔录.txt", &smuggled);
    lab.publish(
        "court",
        "to-internet",
        "通知.docx",
        &docx_of(&["关于某案的通知", "机密"]),
    );
    lab.publish(
        "court",
        "to-internet",
        "内部.txt",
        "本材料为内部资料\n".as_bytes(),
    );
    lab.publish(
        "court",
        "to-internet",
        "合同.docx",
        &docx_of(&["联系电话：13912345678"]),
    );
    lab.publish("court", "to-internet", "名单.csv", csv.as_bytes());

    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "clean files and the masked CSV to land", || {
        visible(&inbox).len() == clean.len() + 1
    });
    for (name, bytes) in &clean {
        assert_eq!(
            &fs::read(inbox.join(name)).unwrap(),
            bytes,
            "{name} changed"
        );
    }
    let masked = fs::read_to_string(inbox.join("名单.csv")).unwrap();
    assert_eq!(
        masked,
        format!(
            "姓名,身份证号,备注\n张三,{}********{},无\n李四,{}********{},电话 138****8000\n",
            &id1[..6],
            &id1[14..],
            &id2[..6],
            &id2[14..]
        )
    );
    let q = lab.quarantine("court", "to-internet");
    wait_until(30, "six refusals", || reasons(&q).len() == 6);
    assert_eq!(
        reasons(&q),
        vec![
            "classification_marking",
            "keyword_match",
            "personal_data",
            "text_encoding",
            "type_refused",
            "type_refused"
        ]
    );
    // the text that turns into a program is refused for what it holds, naming the line
    let smuggled_refusal = fs::read_dir(&q)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".reason.json"))
        .map(|e| serde_json::from_slice::<serde_json::Value>(&fs::read(e.path()).unwrap()).unwrap())
        .find(|j| j["name"] == "开庭笔录.txt")
        .expect("a refusal of 开庭笔录.txt");
    assert_eq!(smuggled_refusal["reason"], "text_encoding");
    assert!(
        smuggled_refusal["detail"]
            .as_str()
            .unwrap()
            .starts_with("line 301 holds the control character U+007F (DEL)"),
        "{smuggled_refusal}"
    );
    // the audit log records both hashes of the masked file
    let records = read_live(&lab.dir.join("court").join("audit"));
    let m = records
        .iter()
        .find(|r| r.event.as_str() == "masked")
        .expect("a masked record");
    let original = hex::encode(ring::digest::digest(&ring::digest::SHA256, csv.as_bytes()));
    assert!(
        m.detail.as_deref().unwrap_or("").contains(&original),
        "{m:?}"
    );
    assert_eq!(m.sha256.clone(), Some(sha256_file(&inbox.join("名单.csv"))));
    // nothing refused reached the other side, and no resident ID did
    for name in visible(&inbox) {
        let bytes = fs::read(inbox.join(name)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&id1) && !text.contains(&id2) && !text.contains("13800138000"));
    }
}

#[test]
fn inbound_archives_and_pdfs_are_opened_and_checked() {
    let lab = Lab::new(21510);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    // 100 MiB of zeros deflate to about 100 KiB: a ratio of 1000
    let zeros = vec![0u8; 100 << 20];
    let bomb = zip_of(&[("zeros.txt", &zeros)]);
    drop(zeros);
    let nested_ok = zip_of(&[
        ("证据/合同.pdf", &pdf_of("Contract", "")),
        ("证据/说明.txt", "证据目录\n".as_bytes()),
    ]);
    let evidence = zip_of(&[("inner.zip", &nested_ok), ("photo.png", PNG_1X1)]);
    lab.publish("internet", "to-court", "bomb.zip", &bomb);
    lab.publish(
        "internet",
        "to-court",
        "slip.zip",
        &zip_of(&[("../../x.txt", b"x\n")]),
    );
    lab.publish(
        "internet",
        "to-court",
        "form.pdf",
        &pdf_of(
            "Form",
            "/OpenAction << /S /JavaScript /JS (app.alert(1)) >> ",
        ),
    );
    lab.publish(
        "internet",
        "to-court",
        "tool.zip",
        &zip_of(&[("run.txt", &elf())]),
    );
    lab.publish("internet", "to-court", "证据.zip", &evidence);
    lab.publish(
        "internet",
        "to-court",
        "起诉状.pdf",
        &pdf_of("Complaint", ""),
    );

    let inbox = lab.inbox("court", "to-court");
    wait_until(60, "the clean zip and PDF", || visible(&inbox).len() == 2);
    assert_eq!(fs::read(inbox.join("证据.zip")).unwrap(), evidence);
    let q = lab.quarantine("internet", "to-court");
    wait_until(30, "four refusals", || reasons(&q).len() == 4);
    assert_eq!(
        reasons(&q),
        vec![
            "active_content",
            "archive_limit",
            "archive_path",
            "type_refused"
        ]
    );
    // the refusal is quarantined before its log line is written: wait for the line
    wait_until(10, "the refusal naming the entry in the log", || {
        lab.log("internet").contains("entry run.txt")
    });
}

#[test]
fn a_changed_policy_is_reloaded_and_an_invalid_one_refused() {
    let lab = Lab::new(21520);
    let court = lab.start("court");
    let _internet = lab.start("internet");
    let inbox = lab.inbox("internet", "to-internet");
    let file = lab.dir.join("policy").join("to-internet.toml");
    let good = fs::read_to_string(&file).unwrap();
    lab.publish("court", "to-internet", "a.txt", "新规则之前\n".as_bytes());
    wait_until(30, "a.txt", || inbox.join("a.txt").exists());

    // an invalid policy is refused; the one in force stays
    fs::write(&file, good.replace("max_length = 255", "max_length = 0")).unwrap();
    wait_until(30, "the refusal to be audited", || {
        events(&lab, "court", "policy_refused") >= 1
    });
    lab.publish("court", "to-internet", "b.txt", "新规则之前\n".as_bytes());
    wait_until(30, "b.txt", || inbox.join("b.txt").exists());
    // one change, one refusal: the node's own reads of the file are not changes
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(events(&lab, "court", "policy_refused"), 1);

    // a valid change is in force at once
    fs::write(
        &file,
        good.replace("keywords = [", "keywords = [\"新规则\", "),
    )
    .unwrap();
    wait_until(30, "the reload to be audited", || {
        events(&lab, "court", "policy_reloaded") >= 1
            && events(&lab, "internet", "policy_reloaded") >= 1
    });
    lab.publish("court", "to-internet", "c.txt", "新规则之后\n".as_bytes());
    let q = lab.quarantine("court", "to-internet");
    wait_until(30, "c.txt refused", || reasons(&q) == vec!["keyword_match"]);

    // SIGHUP reloads too: back to the original policy. The receiving node reads the same
    // file in this lab and reloads it on its own (file watch): wait for it as well, or it
    // may still refuse d.txt under the rule just removed.
    let before = events(&lab, "court", "policy_reloaded");
    let before_far = events(&lab, "internet", "policy_reloaded");
    fs::write(&file, &good).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &court.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until(30, "the second reload", || {
        events(&lab, "court", "policy_reloaded") > before
    });
    wait_until(30, "the receiver's reload", || {
        events(&lab, "internet", "policy_reloaded") > before_far
    });
    lab.publish("court", "to-internet", "d.txt", "新规则之后\n".as_bytes());
    wait_until(30, "d.txt", || inbox.join("d.txt").exists());
}

#[test]
fn a_changed_json_schema_is_reloaded_like_its_policy() {
    let lab = Lab::new(26730);
    let _court = lab.start("court");
    let schema = lab.dir.join("policy").join("notices.schema.json");
    let good = fs::read_to_string(&schema).unwrap();
    wait_until(30, "the node started", || {
        events(&lab, "court", "config_loaded") >= 1
    });
    // the schema changed (again, until the node, which watches once it is up, sees one)
    let reloaded = || {
        lab.records("court", "policy_reloaded")
            .iter()
            .any(|r| r.channel.as_deref() == Some("notices"))
    };
    let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
    let started = std::time::Instant::now();
    let mut n = 0;
    while !reloaded() {
        assert!(
            started.elapsed().as_secs() < 30,
            "a change of notices.schema.json never reloaded the notices policy"
        );
        n += 1;
        value["description"] = serde_json::Value::from(format!("改过的模式 {n}"));
        fs::write(&schema, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    // an invalid schema is refused, the one in force stays
    fs::write(&schema, "{ not json").unwrap();
    wait_until(30, "the broken schema refused", || {
        events(&lab, "court", "policy_refused") >= 1
    });
}

#[test]
fn check_is_the_compliance_review() {
    let lab = Lab::new(21530);
    let config = lab.config("court");
    let out = check(&config, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for expect in [
        "markings      refused",
        "personal data masked",
        "archives      depth 2",
        "warning:",
        "antivirus",
    ] {
        assert!(text.contains(expect), "{expect:?} missing from:\n{text}");
    }
    // a reader that closed the pipe before the report (`isogate check | head`): the
    // report ends quietly, without a panic
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = std::process::Command::new(BIN)
        .args([
            "check",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = &doc["channels"][0]["rules"];
    assert_eq!(rules["personal_data"]["action"], "mask", "{doc}");
    assert_eq!(rules["markings"]["refuse"], true);

    // an outbound policy without marking and personal-data rules is refused…
    let file = lab.dir.join("policy").join("to-internet.toml");
    let good = fs::read_to_string(&file).unwrap();
    let cut = good.find("[markings]").unwrap();
    let end = good.find("# Antivirus").unwrap();
    let weak = format!("{}{}", &good[..cut], &good[end..]);
    fs::write(&file, &weak).unwrap();
    let out = check(&config, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("to-internet.toml: markings:"), "{err}");
    assert!(err.contains("to-internet.toml: personal_data:"), "{err}");
    // …unless the policy opts out explicitly: then it is a warning
    fs::write(
        &file,
        format!("{weak}\n[compliance]\nopt_out = [\"markings\", \"personal_data\"]\n"),
    )
    .unwrap();
    let out = check(&config, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("opted out"));
}

/// Gives the internet node its own copy of the to-internet policy, changed by `edit`.
fn receiver_policy(lab: &Lab, edit: impl Fn(&str) -> String) {
    let policy = lab.dir.join("policy");
    let text = fs::read_to_string(policy.join("to-internet.toml")).unwrap();
    fs::write(policy.join("internet-own.toml"), edit(&text)).unwrap();
    let config = lab.config("internet");
    let cfg = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        cfg.replace(
            "policy = \"policy/to-internet.toml\"",
            "policy = \"policy/internet-own.toml\"",
        ),
    )
    .unwrap();
}

#[test]
fn the_receiver_runs_its_own_policy_and_never_trusts_the_sender() {
    let lab = Lab::new(21550);
    // the sender's copy looks for no personal data; the receiver's copy masks it and also
    // refuses a keyword the sender does not know
    let policy = lab.dir.join("policy").join("to-internet.toml");
    let text = fs::read_to_string(&policy).unwrap();
    let start = text.find("[personal_data]").unwrap();
    let end = text.find("# Antivirus").unwrap();
    receiver_policy(&lab, |t| {
        t.replace("keywords = [", "keywords = [\"仅收方规则\", ")
    });
    fs::write(
        &policy,
        format!(
            "{}{}\n[compliance]\nopt_out = [\"personal_data\"]\n",
            &text[..start],
            &text[end..]
        ),
    )
    .unwrap();
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let id = resident_id("11010519900307123");
    lab.publish(
        "court",
        "to-internet",
        "名单.csv",
        format!("张三,{id}\n").as_bytes(),
    );
    lab.publish(
        "court",
        "to-internet",
        "备注.txt",
        "仅收方规则\n".as_bytes(),
    );
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "the masked CSV", || inbox.join("名单.csv").exists());
    assert_eq!(
        fs::read_to_string(inbox.join("名单.csv")).unwrap(),
        format!("张三,{}********{}\n", &id[..6], &id[14..])
    );
    let q = lab.quarantine("internet", "to-internet");
    wait_until(30, "the receiver's refusal", || {
        reasons(&q) == vec!["keyword_match"]
    });
    assert!(reasons(&lab.quarantine("court", "to-internet")).is_empty());
    assert_eq!(events(&lab, "internet", "masked"), 1);
    assert_eq!(events(&lab, "court", "masked"), 0);
    assert!(!visible(&inbox).contains(&"备注.txt".to_string()));
    // the landing names the hash of what landed, the masked copy, not the sender's
    let landed = lab.records("internet", "landed");
    let csv = landed
        .iter()
        .find(|r| r.name.as_deref() == Some("名单.csv"))
        .unwrap();
    assert_eq!(
        csv.sha256.as_deref(),
        Some(sha256_file(&inbox.join("名单.csv")).as_str())
    );
}

#[test]
fn a_large_file_the_receiver_refuses_unread_stays_with_the_sender() {
    // the receiver's own policy takes nothing over 1 MiB: it refuses the 24 MiB file from
    // its manifest and stops the stream; the sender, whose write then fails, still acts on
    // the receipt: the file goes to the sender's quarantine (peer_refused), once, and is
    // never forgotten as delivered nor sent again and again
    let lab = Lab::new(21560);
    receiver_policy(&lab, |t| {
        t.replace("max_bytes = 1073741824", "max_bytes = 1048576")
    });
    let _court = lab.start("court");
    let internet = lab.start("internet");
    lab.publish_generated("court", "to-internet", "卷宗-大.pdf", 24 << 20, 3);
    let court_q = lab.quarantine("court", "to-internet");
    wait_until(60, "the sender's own quarantine", || {
        reasons(&court_q) == vec!["peer_refused"]
    });
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    assert!(reasons(&lab.quarantine("internet", "to-internet")) == vec!["size_limit"]);
    assert_eq!(events(&lab, "internet", "quarantined"), 1);
    assert_eq!(events(&lab, "internet", "duplicate"), 0);
    assert_eq!(events(&lab, "court", "confirmed"), 0);
    let log = lab.log("internet");
    assert!(
        log.matches("refused").count() < 5,
        "refused once, not sent again and again:\n{log}"
    );
    drop(internet);
}
