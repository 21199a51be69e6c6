//! One stream's data and what is done with it: decoded through its filter chain, then searched
//! for active names, read for text (and CMaps), or read as objects for the fonts; at its end,
//! whether a failure to decode it whole is a refusal.

use super::active::Names;
use super::filters::{Next, Stage, Step, Stop, run, run_flush};
use super::fonts::Fonts;
use super::objstm::ObjStm;
use super::text::Lexer;
use super::unreadable;
use crate::content::LineSink;
use crate::core::reason::Refusal;

/// How a failure to read a stream's text whole is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum TextMode {
    /// The text is not read.
    #[default]
    Off,
    /// A content stream: any failure (cut, undecodable, not to its end, a string too long)
    /// is a refusal.
    Strict,
    /// A stream that should hold no text (an image, a font, on the side): a failure is a
    /// refusal only once text has been shown from it.
    Loose,
}

/// What is done with the data of one stream.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// Decoding stages; none for raw bytes.
    pub(super) stages: Vec<Stage>,
    /// Searches the (decoded) bytes for active names.
    pub(super) names: Option<Names>,
    /// Reads the text of a content stream.
    pub(super) lexer: Option<Lexer>,
    /// Reads the objects of an object stream for the fonts.
    pub(super) objects: Option<ObjStm>,
    /// An object stream read for active content or fonts: it must decode to its end, uncut.
    pub(super) strict_objects: bool,
    /// Whether a stream whose text is read must decode to its end, uncut.
    pub(super) text: TextMode,
    /// Searches the raw bytes, before any decoding, for active names (a malformed image).
    pub(super) raw_names: Option<Names>,
    /// Started on the side (a `>> stream` the tokens did not accept): a decode that fails
    /// before putting anything out is a false start, not a refusal.
    pub(super) side: bool,
}

/// Hands one piece of decoded data to each reader of the stream.
fn consume(
    names: &mut Option<Names>,
    lexer: &mut Option<Lexer>,
    objects: &mut Option<ObjStm>,
    data: &[u8],
    sink: &mut LineSink<'_>,
    doc: &mut Fonts,
) -> Result<(), Refusal> {
    if let Some(names) = names.as_mut() {
        names.scan(data)?;
    }
    if let Some(objects) = objects.as_mut() {
        objects.feed(data, doc);
    }
    if let Some(lexer) = lexer.as_mut() {
        lexer.feed(data, sink, doc)?;
    }
    Ok(())
}

impl StreamState {
    pub(super) fn idle(&self) -> bool {
        !self.decodes() && self.raw_names.is_none()
    }

    /// Whether anything reads the decoded data.
    fn decodes(&self) -> bool {
        self.names.is_some() || self.lexer.is_some() || self.objects.is_some()
    }

    /// Drives the stages with `drive` (a push of data, or the flush at its end) and hands
    /// what comes out of them to each reader of the decoded data.
    fn decode(
        &mut self,
        sink: &mut LineSink<'_>,
        doc: &mut Fonts,
        drive: impl FnOnce(&mut [Stage], &mut Next<'_>) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        let StreamState {
            stages,
            names,
            lexer,
            objects,
            ..
        } = self;
        drive(stages, &mut |piece| {
            consume(names, lexer, objects, piece, sink, doc)
        })
    }

    pub(super) fn feed(
        &mut self,
        data: &[u8],
        sink: &mut LineSink<'_>,
        doc: &mut Fonts,
    ) -> Result<(), Refusal> {
        if let Some(raw) = self.raw_names.as_mut() {
            raw.scan(data)?;
        }
        if !self.decodes() {
            return Ok(());
        }
        self.decode(sink, doc, |stages, out| run(stages, data, out))
    }

    pub(super) fn finish(
        &mut self,
        sink: &mut LineSink<'_>,
        doc: &mut Fonts,
    ) -> Result<(), Refusal> {
        if let Some(raw) = self.raw_names.as_mut() {
            raw.finish()?;
        }
        if !self.decodes() {
            return Ok(());
        }
        self.decode(sink, doc, run_flush)?;
        if let Some(names) = self.names.as_mut() {
            names.finish()?;
        }
        let cut = self.stages.iter().any(|s| s.stop == Stop::Cut);
        let error = self.stages.iter().any(|s| s.stop == Stop::Error);
        let unfinished = self
            .stages
            .iter()
            .any(|s| matches!(s.step, Step::Flate(_)) && s.stop != Stop::Ended);
        let started = self.stages.first().is_none_or(|s| s.total_out > 0);
        let failed = cut || error || unfinished;
        if let Some(objects) = self.objects.as_mut() {
            objects.finish(doc);
            if failed {
                doc.lost = true;
            }
        }
        if let Some(lexer) = self.lexer.as_mut() {
            lexer.finish(sink, doc, failed)?;
        }
        if self.strict_objects && failed && (!self.side || started) {
            return Err(unreadable(if cut {
                "PDF object stream too large to inspect"
            } else {
                "PDF object stream cannot be decoded to its end"
            }));
        }
        let shown = self.lexer.as_ref().is_some_and(|lexer| lexer.shown);
        let text_failed = match self.text {
            TextMode::Off => false,
            TextMode::Strict => failed,
            TextMode::Loose => failed && shown,
        };
        if text_failed {
            return Err(unreadable(if cut {
                "PDF page text too large to read whole (per-stream cap or expansion limit)"
            } else {
                "PDF content stream cannot be decoded to its end"
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PAGE, catalog, deflate, pdf, reason};
    use super::super::text::MAX_STRING;
    use crate::core::reason::Reason;

    #[test]
    fn text_that_cannot_be_read_whole_is_refused_when_text_is_read() {
        let packed = deflate(PAGE);
        let mut corrupt = packed.clone();
        let n = corrupt.len();
        corrupt[n / 2..].iter_mut().for_each(|b| *b ^= 0x5a);
        let cases: [(&str, &[u8]); 5] = [
            ("<< /Filter /JBIG2Decode >>", PAGE),
            ("<< /Filter 4 0 R >>", &packed),
            ("<< /Type /XObject /Subtype /Form /Filter /Unknown >>", PAGE),
            ("<< /Filter /FlateDecode >>", &corrupt),
            ("<< /Filter /FlateDecode >>", &packed[..n - 6]),
        ];
        for (dict, data) in cases {
            let doc = pdf(&[catalog(), (dict, Some(data))]);
            assert_eq!(
                reason(&doc, false, true),
                Some(Reason::ContentUnreadable),
                "{dict}"
            );
        }
        let long = format!("BT ({}) Tj ET", "x".repeat(MAX_STRING + 1));
        let doc = pdf(&[catalog(), ("<< >>", Some(long.as_bytes()))]);
        assert_eq!(reason(&doc, false, true), Some(Reason::ContentUnreadable));
    }
}
