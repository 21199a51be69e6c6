//! Entry names as their authors wrote them. A zip entry name is bytes whose encoding the
//! archive says only sometimes (APPNOTE 6.3.10 §4.4.4 bit 11, §4.6.9 Info-ZIP Unicode Path
//! extra field); a ustar or GNU tar name is bytes in no stated encoding (a PAX `path` record
//! is UTF-8). Zips made on Chinese-locale Windows hold GBK names without the flag; zips made
//! on macOS hold UTF-8 (in NFD) without it.
//!
//! ```text
//!  zip:  UTF-8 flag ──► the bytes must be UTF-8 (a Unicode Path field, if any, must agree)
//!        Unicode Path field ──► its UTF-8, if the raw name reads the same (else refused)
//!        neither ──► valid UTF-8 ──► else the legacy encoding (GB18030, or CP437 if asked)
//!  tar:  PAX path ──► UTF-8;  ustar / GNU name ──► valid UTF-8 ──► else the legacy encoding
//!  every name ──► Unicode NFC (the spelling the rules see and every message shows)
//! ```

use unicode_normalization::UnicodeNormalization;

/// How names that are neither flagged nor valid UTF-8 are read: the encoding of the
/// archiver's legacy code page. A policy chooses it with `archives.legacy_names`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyNames {
    /// GB18030 (a superset of GBK and GB2312): Chinese-locale Windows. The default.
    #[default]
    Gb18030,
    /// IBM code page 437: the zip format's original code page, written by old Western tools.
    Cp437,
}

impl LegacyNames {
    /// The name a policy uses for it: `gb18030` or `cp437`.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyNames::Gb18030 => "gb18030",
            LegacyNames::Cp437 => "cp437",
        }
    }

    /// Parses a policy's name for it.
    pub fn parse(name: &str) -> Option<LegacyNames> {
        match name {
            "gb18030" => Some(LegacyNames::Gb18030),
            "cp437" => Some(LegacyNames::Cp437),
            _ => None,
        }
    }

    /// Decodes `raw` strictly; `None` when it is not valid in this encoding.
    fn decode(self, raw: &[u8]) -> Option<String> {
        match self {
            LegacyNames::Gb18030 => encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(raw)
                .map(|s| s.into_owned()),
            LegacyNames::Cp437 => Some(oem_cp::decode_string_complete_table(
                raw,
                &oem_cp::code_table::DECODING_TABLE_CP437,
            )),
        }
    }
}

/// The name of a zip entry from its raw bytes, its general-purpose flag bit 11 (`utf8_flag`)
/// and the name in its Info-ZIP Unicode Path extra field (`unicode_path`, whose CRC-32 of the
/// raw name the zip reader has already checked), in NFC. `Err` says why the name cannot be
/// read as one name: the caller refuses the archive.
pub fn zip_name(
    raw: &[u8],
    utf8_flag: bool,
    unicode_path: Option<&[u8]>,
    legacy: LegacyNames,
) -> Result<String, String> {
    if utf8_flag {
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err("flagged as UTF-8 but is not UTF-8".into());
        };
        if let Some(path) = unicode_path
            && path != raw
        {
            return Err(format!(
                "the Unicode Path extra field names another file ({:?})",
                String::from_utf8_lossy(path)
            ));
        }
        return Ok(nfc(name));
    }
    if let Some(path) = unicode_path {
        let Ok(unicode) = std::str::from_utf8(path) else {
            return Err("its Unicode Path extra field is not UTF-8".into());
        };
        let agrees = [
            std::str::from_utf8(raw).ok().map(str::to_string),
            legacy.decode(raw),
        ]
        .into_iter()
        .flatten()
        .any(|spelled| same_name(&spelled, unicode));
        if !agrees {
            return Err(format!(
                "its raw name ({:?}) and its Unicode Path extra field ({unicode:?}) name \
                 different files",
                raw_display(raw, legacy)
            ));
        }
        return Ok(nfc(unicode));
    }
    unflagged(raw, legacy)
}

/// The name of a tar entry from its raw bytes (`from_pax`: a PAX `path` record, UTF-8 by
/// POSIX.1-2001), in NFC. `Err` says why it cannot be read.
pub fn tar_name(raw: &[u8], from_pax: bool, legacy: LegacyNames) -> Result<String, String> {
    if from_pax {
        return std::str::from_utf8(raw)
            .map(nfc)
            .map_err(|_| "its PAX path record is not UTF-8".into());
    }
    unflagged(raw, legacy)
}

/// A name in no stated encoding: UTF-8 when it is valid UTF-8, else the legacy encoding.
fn unflagged(raw: &[u8], legacy: LegacyNames) -> Result<String, String> {
    if let Ok(name) = std::str::from_utf8(raw) {
        return Ok(nfc(name));
    }
    legacy.decode(raw).map(|name| nfc(&name)).ok_or_else(|| {
        format!(
            "name in an unknown encoding (neither UTF-8 nor {})",
            legacy.as_str().to_uppercase()
        )
    })
}

/// Whether a raw name as the legacy archiver spelled it is the Unicode name: the same, or
/// the same where the archiver wrote `?` for a character its code page lacks.
fn same_name(spelled: &str, unicode: &str) -> bool {
    let (a, b) = (nfc(spelled), nfc(unicode));
    if a == b {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x == y || (*x == '?' && !y.is_ascii()))
}

/// A raw name for a message: as the legacy encoding reads it, or escaped.
fn raw_display(raw: &[u8], legacy: LegacyNames) -> String {
    std::str::from_utf8(raw)
        .ok()
        .map(str::to_string)
        .or_else(|| legacy.decode(raw))
        .unwrap_or_else(|| raw.escape_ascii().to_string())
}

/// `name` in Unicode normalisation form C (UAX #15).
pub fn nfc(name: &str) -> String {
    if unicode_normalization::is_nfc(name) {
        name.to_string()
    } else {
        name.nfc().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbk(s: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(s).0.into_owned()
    }

    #[test]
    fn gbk_names_from_chinese_windows_read_as_written() {
        let raw = gbk("起诉材料/民事起诉状.pdf");
        assert_eq!(
            zip_name(&raw, false, None, LegacyNames::Gb18030).unwrap(),
            "起诉材料/民事起诉状.pdf"
        );
        // the same bytes under a CP437 policy read as the old code page would
        let cp = zip_name(&raw, false, None, LegacyNames::Cp437).unwrap();
        assert_ne!(cp, "起诉材料/民事起诉状.pdf");
        assert!(cp.ends_with("/.pdf") || cp.ends_with(".pdf"));
    }

    #[test]
    fn macos_utf8_without_the_flag_in_nfd_becomes_nfc() {
        let nfd = "résumé-が.txt".nfd().collect::<String>();
        assert_ne!(nfd, "résumé-が.txt");
        let name = zip_name(nfd.as_bytes(), false, None, LegacyNames::Gb18030).unwrap();
        assert_eq!(name, "résumé-が.txt");
        assert_eq!(
            tar_name(nfd.as_bytes(), true, LegacyNames::Gb18030).unwrap(),
            "résumé-が.txt"
        );
    }

    #[test]
    fn a_flagged_name_must_be_utf8() {
        let raw = gbk("证据.txt");
        let err = zip_name(&raw, true, None, LegacyNames::Gb18030).unwrap_err();
        assert!(err.contains("flagged as UTF-8"), "{err}");
        assert_eq!(
            zip_name("证据.txt".as_bytes(), true, None, LegacyNames::Gb18030).unwrap(),
            "证据.txt"
        );
    }

    #[test]
    fn a_unicode_path_field_must_agree_with_the_raw_name() {
        let raw = gbk("证据目录.txt");
        // what 7-Zip writes: the legacy spelling and the same name in UTF-8
        assert_eq!(
            zip_name(
                &raw,
                false,
                Some("证据目录.txt".as_bytes()),
                LegacyNames::Gb18030
            )
            .unwrap(),
            "证据目录.txt"
        );
        // a code page without the characters: '?' stands for each
        assert_eq!(
            zip_name(
                b"????.txt",
                false,
                Some("证据目录.txt".as_bytes()),
                LegacyNames::Cp437
            )
            .unwrap(),
            "证据目录.txt"
        );
        // another file altogether
        let err = zip_name(
            b"readme.txt",
            false,
            Some("invoice.cmd".as_bytes()),
            LegacyNames::Gb18030,
        )
        .unwrap_err();
        assert!(err.contains("different files"), "{err}");
        let err = zip_name(
            b"readme.txt",
            true,
            Some(b"invoice.cmd"),
            LegacyNames::Gb18030,
        )
        .unwrap_err();
        assert!(err.contains("another file"), "{err}");
        // '?' stands only for a character the code page lacks, not for ASCII
        assert!(zip_name(b"a?.txt", false, Some(b"ab.txt"), LegacyNames::Cp437).is_err());
    }

    #[test]
    fn names_in_no_known_encoding_are_refused_with_a_reason() {
        // 0xFF is not a GB18030 lead byte and the bytes are not UTF-8
        let err = zip_name(b"\xFF\xFEname", false, None, LegacyNames::Gb18030).unwrap_err();
        assert!(err.contains("unknown encoding"), "{err}");
        assert!(tar_name(b"\xFF\xFE", true, LegacyNames::Gb18030).is_err());
        assert!(tar_name(&gbk("判决书.pdf"), false, LegacyNames::Gb18030).is_ok());
    }
}
