//! Positions in a profile's text: byte offsets to `line:column`, and the
//! span of a value named by its key path, whichever TOML spelling put it
//! there (`[a.b]` headers in any order, dotted keys, inline tables, arrays
//! of tables).

use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path: a table key or an array index.
#[derive(Clone, Copy, Debug)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Seg<'a> {
    /// The key path of a failed `[init]` check, relative to `init`.
    pub fn path(steps: &'a [mkrootfs_config::KeyStep]) -> impl Iterator<Item = Seg<'a>> {
        steps.iter().map(|step| match step {
            mkrootfs_config::KeyStep::Key(k) => Seg::Key(k),
            mkrootfs_config::KeyStep::Index(i) => Seg::Index(*i),
        })
    }
}

/// Where the value at `path` was written: for a table, its `[header]` or,
/// when it has none (dotted keys, an inline table, a table only implied by
/// `[a.b]`), its key; the value itself otherwise. When the path goes further than the
/// document, the deepest part that exists. `None` if the text does not
/// parse or has not even the first key.
pub fn span_of(text: &str, path: &[Seg]) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    span_in(&doc, path)
}

/// A profile's text parsed once, for many [`Spans::span_of`] look-ups (one
/// per entry of a long list would otherwise parse it again each time).
pub struct Spans<'t>(Option<Spanned<DeTable<'t>>>);

impl<'t> Spans<'t> {
    pub fn new(text: &'t str) -> Spans<'t> {
        Spans(DeTable::parse(text).ok())
    }

    /// [`span_of`] in this text.
    pub fn span_of(&self, path: &[Seg]) -> Option<Range<usize>> {
        span_in(self.0.as_ref()?, path)
    }
}

fn span_in(doc: &Spanned<DeTable>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best = None;
    let mut here: Option<&DeValue> = None; // None: the document's root table
    for seg in path {
        let found: Option<(Range<usize>, &Spanned<DeValue>)> = match (*seg, here) {
            (Seg::Key(k), None) => doc.get_ref().get_key_value(k).map(|(k, v)| (k.span(), v)),
            (Seg::Key(k), Some(DeValue::Table(t))) => {
                t.get_key_value(k).map(|(k, v)| (k.span(), v))
            }
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((key, value)) = found else { break };
        let span = value.span();
        best = Some(match value.get_ref() {
            DeValue::Table(_) | DeValue::Array(_) if key.start < span.start => key,
            _ => span,
        });
        here = Some(value.get_ref());
    }
    best
}
