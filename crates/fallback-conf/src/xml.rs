//! Stage one: XML text to a small element tree with byte offsets.
//!
//! The tree is the raw mirror of the file. It keeps every element, known or not, so the
//! second stage can say where each value came from and warn about what it ignores.
//! No entity is ever expanded beyond the five XML ones and character references, and a
//! DOCTYPE is refused outright.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::errors::{Error as XmlError, IllFormedError};
use quick_xml::events::{BytesStart, Event};

use crate::diag::{Code, Diagnostic, LineIndex};

/// Largest accepted file. Real aspera.conf files are well under 1 MiB.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Deepest accepted nesting. aspera.conf nests about ten levels.
pub const MAX_DEPTH: usize = 64;

/// An element; names and most text borrow from the input.
#[derive(Debug)]
pub(crate) struct Element<'a> {
    pub(crate) name: &'a str,
    pub(crate) attrs: Vec<(String, String)>,
    /// Text content; whitespace before the first non-blank segment is dropped.
    pub(crate) text: Cow<'a, str>,
    pub(crate) children: Vec<Element<'a>>,
    /// Byte offset of the `<` that opens the element.
    pub(crate) start: usize,
    /// Byte offset of the element's first text, or of its start when it has none.
    pub(crate) text_start: usize,
}

impl<'a> Element<'a> {
    /// `text` is the whole input and `start` the offset of the tag's `<`: the name is
    /// sliced from the input so it borrows from it rather than from the event.
    fn new(text: &'a str, tag: &BytesStart<'_>, start: usize) -> Result<Self, String> {
        let mut attrs = Vec::new();
        for attr in tag.attributes() {
            let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| format!("bad attribute value: {e}"))?;
            attrs.push((attr.key.0.to_owned(), value.into_owned()));
        }
        let len = tag.name().0.len();
        let name = text
            .get(start + 1..start + 1 + len)
            .filter(|n| *n == tag.name().0)
            .ok_or_else(|| "cannot locate the element name".to_owned())?;
        Ok(Self {
            name,
            attrs,
            text: Cow::Borrowed(""),
            children: Vec::new(),
            start,
            text_start: start,
        })
    }

    /// The text content with surrounding whitespace removed.
    pub(crate) fn value(&self) -> &str {
        self.text.trim()
    }

    /// Byte offset of the trimmed value (for precise positions in findings).
    pub(crate) fn value_start(&self) -> usize {
        self.text_start + (self.text.len() - self.text.trim_start().len())
    }
}

fn syntax(idx: &LineIndex<'_>, code: Code, at: usize, path: &str, msg: String) -> Diagnostic {
    Diagnostic::new(code, Some(idx.pos(at)), path, msg)
}

fn path_of(stack: &[Element<'_>]) -> String {
    let mut p = String::new();
    for e in stack {
        p.push('/');
        p.push_str(e.name);
    }
    p
}

/// Parses `text` into its root element.
pub(crate) fn parse<'a>(text: &'a str, idx: &LineIndex<'_>) -> Result<Element<'a>, Diagnostic> {
    if text.len() > MAX_BYTES {
        return Err(Diagnostic::new(
            Code::TooLarge,
            None,
            "",
            format!(
                "the file is {} bytes; the limit is {MAX_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element<'a>> = Vec::new();
    let mut root: Option<Element<'a>> = None;

    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(err) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                return Err(match err {
                    XmlError::IllFormed(IllFormedError::MismatchedEndTag { expected, found })
                        if stack.iter().any(|e| e.name == found) =>
                    {
                        // The end tag closes an outer element: the inner one was left open.
                        let opened = stack.last().map_or(at, |e| e.start);
                        syntax(
                            idx,
                            Code::UnclosedTag,
                            opened,
                            &path_of(&stack),
                            format!(
                                "<{expected}> is never closed (</{found}> at {} closes an outer \
                                 element first): add </{expected}>",
                                idx.pos(at)
                            ),
                        )
                    }
                    XmlError::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
                        let opened = stack.last().map_or(at, |e| e.start);
                        syntax(
                            idx,
                            Code::MismatchedTag,
                            at,
                            &path_of(&stack),
                            format!(
                                "found </{found}> but <{expected}> (opened at {}) is still open",
                                idx.pos(opened)
                            ),
                        )
                    }
                    XmlError::IllFormed(IllFormedError::MissingEndTag(name)) => {
                        let opened = stack.last().map_or(at, |e| e.start);
                        syntax(
                            idx,
                            Code::UnclosedTag,
                            opened,
                            &path_of(&stack),
                            format!("<{name}> is never closed: add </{name}>"),
                        )
                    }
                    other => syntax(
                        idx,
                        Code::XmlSyntax,
                        at,
                        &path_of(&stack),
                        format!("malformed XML: {other}"),
                    ),
                });
            }
        };
        match event {
            Event::Start(tag) | Event::Empty(tag) if stack.is_empty() && root.is_some() => {
                return Err(syntax(
                    idx,
                    Code::XmlSyntax,
                    before,
                    "",
                    format!(
                        "a second root element <{}>: aspera.conf has exactly one <CONF>",
                        tag.name().0
                    ),
                ));
            }
            Event::Start(tag) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(
                        idx,
                        Code::TooDeep,
                        before,
                        &path_of(&stack),
                        format!("elements nest deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let el = Element::new(text, &tag, before)
                    .map_err(|m| syntax(idx, Code::XmlSyntax, before, &path_of(&stack), m))?;
                stack.push(el);
            }
            Event::Empty(tag) => {
                let el = Element::new(text, &tag, before)
                    .map_err(|m| syntax(idx, Code::XmlSyntax, before, &path_of(&stack), m))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(syntax(
                        idx,
                        Code::MismatchedTag,
                        before,
                        "",
                        "a closing tag with no open element".to_owned(),
                    ));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => append_text(&mut stack, t.xml10_content(), before, idx)?,
            Event::CData(t) => append_text(&mut stack, t.xml10_content(), before, idx)?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => match &*r {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "apos" => Some('\''),
                        "quot" => Some('"'),
                        _ => None,
                    },
                    Err(_) => None,
                };
                let Some(c) = resolved else {
                    return Err(syntax(
                        idx,
                        Code::UnknownEntity,
                        before,
                        &path_of(&stack),
                        format!(
                            "unknown entity &{};: only &amp; &lt; &gt; &apos; &quot; and character references are allowed",
                            &*r
                        ),
                    ));
                };
                let owned: Cow<'a, str> = Cow::Owned(c.to_string());
                append_text(&mut stack, owned, before, idx)?;
            }
            Event::DocType(_) => {
                return Err(syntax(
                    idx,
                    Code::DoctypeRefused,
                    before,
                    "",
                    "DOCTYPE and entity declarations are refused (they enable entity expansion \
                     and external entities); remove the <!DOCTYPE ...> block"
                        .to_owned(),
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(syntax(
            idx,
            Code::UnclosedTag,
            open.start,
            &path_of(&stack),
            format!("<{0}> is never closed: add </{0}>", open.name),
        ));
    }
    root.ok_or_else(|| {
        Diagnostic::new(
            Code::NotAsperaConf,
            Some(idx.pos(text.len())),
            "",
            "no root element: an aspera.conf holds a <CONF> element",
        )
    })
}

fn append_text<'a>(
    stack: &mut [Element<'a>],
    s: Cow<'a, str>,
    at: usize,
    idx: &LineIndex<'_>,
) -> Result<(), Diagnostic> {
    let blank = s.trim().is_empty();
    match stack.last_mut() {
        // Layout whitespace before any content: nothing to keep.
        Some(el) if el.text.is_empty() && blank => Ok(()),
        Some(el) => {
            if el.text.is_empty() {
                el.text_start = at;
                el.text = s;
            } else {
                el.text.to_mut().push_str(&s);
            }
            Ok(())
        }
        None if blank => Ok(()),
        None => Err(syntax(
            idx,
            Code::XmlSyntax,
            at + (s.len() - s.trim_start().len()),
            "",
            "text outside the root element".to_owned(),
        )),
    }
}
