//! The console's two languages: every label of every page in Chinese and English, and which
//! one a request gets.
//!
//! ```text
//!  ?lang=zh|en ─► (remembered in the `isogate_lang` cookie)
//!  else cookie ─► else Accept-Language's first tag (zh* ─► zh) ─► else English
//!  Lang ─► labels() ─► { key: text } for the templates (`{{ t.search }}`)
//! ```

use std::collections::BTreeMap;

/// Name of the language cookie.
pub const COOKIE: &str = "isogate_lang";

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// `zh` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The HTML `lang` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// Parses `zh` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of a request: the `lang` query value, else the cookie, else the first
    /// tag of `Accept-Language`, else English.
    pub fn choose(query: Option<&str>, cookie: Option<&str>, accept: Option<&str>) -> Lang {
        query
            .and_then(Lang::parse)
            .or_else(|| cookie.and_then(Lang::parse))
            .or_else(|| {
                let first = accept?.split(',').next()?.trim().to_ascii_lowercase();
                Some(if first.starts_with("zh") {
                    Lang::Zh
                } else {
                    Lang::En
                })
            })
            .unwrap_or(Lang::En)
    }

    /// Every label in this language.
    pub fn labels(self) -> BTreeMap<&'static str, &'static str> {
        LABELS
            .iter()
            .map(|(k, zh, en)| (*k, if self == Lang::Zh { *zh } else { *en }))
            .collect()
    }
}

/// (key, Chinese, English).
const LABELS: &[(&str, &str, &str)] = &[
    ("console", "隔离交换网关控制台", "isogate console"),
    ("login_title", "登录", "Log in"),
    ("user", "用户名", "User"),
    ("password", "密码", "Password"),
    ("login", "登录", "Log in"),
    ("logout", "退出", "Log out"),
    (
        "login_failed",
        "用户名或密码错误。",
        "Wrong user name or password.",
    ),
    (
        "login_wait",
        "登录失败次数过多，请稍后再试（秒）：",
        "Too many failed logins; try again in (seconds):",
    ),
    ("login_needed", "请先登录。", "Please log in."),
    ("overview", "概览", "Overview"),
    ("search", "查询", "Search"),
    ("quarantine", "隔离区", "Quarantine"),
    ("approvals", "待审批", "Approvals"),
    ("health", "运行状态与指标", "Health and metrics"),
    ("node", "节点", "Node"),
    ("zone", "区域", "Zone"),
    ("peer", "对端", "Peer"),
    ("time_zone", "时区", "Time zone"),
    ("signed_in_as", "当前用户", "Signed in as"),
    ("healthy", "运行正常", "Healthy"),
    ("problems", "存在问题", "Problems"),
    ("counters", "主要计数", "Key counters"),
    ("counter", "计数器", "Counter"),
    ("value", "数值", "Value"),
    ("log_status", "审计日志校验", "Audit log verification"),
    (
        "log_ok",
        "审计日志完整，签名有效",
        "The audit log verifies: chain and signatures intact",
    ),
    (
        "log_bad",
        "审计日志校验失败",
        "The audit log does NOT verify",
    ),
    ("records", "记录数", "Records"),
    ("checkpoints", "检查点", "Checkpoints"),
    ("unsigned_tail", "尚未签名的记录", "Records not yet signed"),
    ("checked_at", "校验时间", "Checked at"),
    ("name_contains", "文件名包含", "Name contains"),
    ("sha256", "SHA-256 / SM3", "SHA-256 / SM3"),
    ("since", "起始时间", "Since"),
    ("until", "截止时间", "Until"),
    (
        "time_forms",
        "时间格式：2026-11-30 09:00、today、-1h 等",
        "Times: 2026-11-30 09:00, today, -1h and more",
    ),
    ("channel", "通道", "Channel"),
    ("event", "事件", "Event"),
    ("reason", "原因", "Reason"),
    ("any", "全部", "any"),
    ("results", "结果", "Results"),
    ("no_results", "没有匹配的记录。", "No matching records."),
    (
        "shown_last",
        "仅显示最近的匹配记录：",
        "Showing the latest matches only:",
    ),
    ("time", "时间", "Time"),
    ("name", "文件名", "Name"),
    ("size", "大小", "Size"),
    ("detail", "详情", "Detail"),
    ("object", "对象", "Object"),
    ("trail", "审计轨迹", "Audit trail"),
    ("proof", "包含性证明", "Inclusion proof"),
    (
        "proof_ok",
        "以下记录均包含在节点签名的检查点中",
        "These records are included in the node's signed checkpoint",
    ),
    ("proof_none", "暂无证明", "No proof yet"),
    ("checkpoint", "检查点", "Checkpoint"),
    ("index", "序号", "Index"),
    ("path", "证明路径", "Path"),
    ("in_quarantine", "隔离记录", "Quarantine entry"),
    ("side", "拒绝方", "Refused by"),
    ("kind", "内容", "Content"),
    (
        "empty_quarantine",
        "隔离区为空。",
        "The quarantine is empty.",
    ),
    (
        "no_pending",
        "没有待审批的对象。",
        "Nothing waits for approval.",
    ),
    ("pending_since", "等待开始", "Waiting since"),
    ("expires", "过期时间", "Expires"),
    ("approved_by", "已批准", "Approved by"),
    ("levels_missing", "待审批级别", "Levels still to sign"),
    ("required", "所需审批人数", "Approvals required"),
    ("approve", "批准", "Approve"),
    ("reject", "驳回", "Reject"),
    (
        "key_file",
        "审批私钥文件（PEM，只在浏览器中使用，不会上传）",
        "Approver's private key file (PEM; used in this browser only, never uploaded)",
    ),
    ("note", "备注", "Note"),
    (
        "cli_hint",
        "也可以在本机用命令行审批，私钥无需进入浏览器：",
        "Or approve from a shell on this host, keeping the key out of the browser:",
    ),
    (
        "gm_cli_only",
        "本对节点使用国密套件：审批人以 SM2 签名，浏览器不支持 SM2，请在本机用下面的命令审批：",
        "This pair runs the national suite: approvers sign with SM2, which the browser cannot do; approve with the command below, on this host:",
    ),
    ("digest", "签名摘要", "Digest signed"),
    ("metrics", "指标", "Metrics"),
    ("error", "错误", "Error"),
    ("not_found", "未找到。", "Not found."),
    ("missing", "未找到", "Not found"),
    (
        "no_such_object",
        "审计日志中没有该对象的记录：",
        "The audit log has no record of this object:",
    ),
    (
        "bad_since",
        "无法识别起始时间（格式见下方说明）：",
        "The start time cannot be read (see the forms below):",
    ),
    (
        "bad_until",
        "无法识别截止时间（格式见下方说明）：",
        "The end time cannot be read (see the forms below):",
    ),
    ("bad_event", "没有这个事件：", "No such event:"),
    ("bad_reason", "没有这个原因代码：", "No such reason code:"),
    (
        "bad_sha256",
        "SHA-256 或 SM3 应为 64 位十六进制数字：",
        "A SHA-256 or SM3 hash is 64 hexadecimal digits:",
    ),
    ("bad_search", "查询条件无效：", "Search not understood:"),
    (
        "log_unreadable",
        "无法读取审计日志：",
        "The audit log cannot be read:",
    ),
    (
        "metrics_text",
        "Prometheus 格式的指标原文（说明文字为英文）",
        "The metrics in Prometheus text format",
    ),
    (
        "choose_key",
        "请选择您的审批私钥文件（.approver.key）",
        "Choose your approver key file (.approver.key)",
    ),
    ("lang_zh", "中文", "中文"),
    ("lang_en", "English", "English"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_in_both_languages_and_choice() {
        let mut seen = std::collections::BTreeSet::new();
        for (k, zh, en) in LABELS {
            assert!(seen.insert(*k), "label {k} twice");
            assert!(!zh.is_empty() && !en.is_empty(), "label {k}");
        }
        assert_eq!(Lang::Zh.labels().len(), Lang::En.labels().len());
        assert_eq!(Lang::choose(Some("zh"), Some("en"), None), Lang::Zh);
        assert_eq!(Lang::choose(Some("xx"), Some("zh"), None), Lang::Zh);
        assert_eq!(
            Lang::choose(None, None, Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Lang::Zh
        );
        assert_eq!(Lang::choose(None, None, Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::choose(None, None, None), Lang::En);
    }
}
