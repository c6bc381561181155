//! Defensive XML reading: every document this crate touches is parsed here.
//!
//! DTDs are refused outright (so no entity other than the five predefined ones and character
//! references is ever expanded), and the input size, element depth, attributes per element and
//! node count are bounded. Errors carry the line and column. This module must never fetch
//! anything (no external entities, no XInclude) and never accept a document it cannot bound.

pub use roxmltree::{Document, Node, NodeId};

/// Bounds applied to every parsed document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlLimits {
    /// Maximum input size in bytes.
    pub max_bytes: usize,
    /// Maximum element nesting depth (the root element is depth 1).
    pub max_depth: usize,
    /// Maximum attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
    /// Maximum number of nodes (elements, text, comments, PIs).
    pub max_nodes: u32,
}

impl Default for XmlLimits {
    /// 64 MiB, depth 256, 256 attributes per element, 4 million nodes: generous for SOAP
    /// envelopes carrying business data, small enough to bound memory and recursion.
    fn default() -> Self {
        XmlLimits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 256,
            max_attributes: 256,
            max_nodes: 4_000_000,
        }
    }
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The input is larger than [`XmlLimits::max_bytes`].
    #[error("XML document is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The input is not UTF-8 (the only encoding accepted).
    #[error("XML document is not valid UTF-8 (byte {offset}); only UTF-8 is accepted")]
    NotUtf8 { offset: usize },
    /// A DOCTYPE declaration was found; DTDs are never processed.
    #[error("line {line}, column {column}: DOCTYPE declarations are refused (no DTD processing)")]
    DtdRefused { line: u32, column: u32 },
    /// Elements are nested deeper than [`XmlLimits::max_depth`].
    #[error("line {line}, column {column}: elements nested deeper than {limit}")]
    TooDeep {
        line: u32,
        column: u32,
        limit: usize,
    },
    /// An element has more attributes than [`XmlLimits::max_attributes`].
    #[error("line {line}, column {column}: element has more than {limit} attributes")]
    TooManyAttributes {
        line: u32,
        column: u32,
        limit: usize,
    },
    /// The document has more nodes than [`XmlLimits::max_nodes`].
    #[error("XML document has more than {limit} nodes")]
    TooManyNodes { limit: u32 },
    /// The document is not well-formed (or not namespace-well-formed).
    #[error("line {line}, column {column}: {message}")]
    Malformed {
        line: u32,
        column: u32,
        message: String,
    },
}

/// Parses UTF-8 bytes under `limits`. See [`parse`].
pub fn parse_bytes<'a>(input: &'a [u8], limits: &XmlLimits) -> Result<Document<'a>, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| XmlError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    parse(text, limits)
}

/// Parses `text` under `limits`, refusing DTDs.
pub fn parse<'a>(text: &'a str, limits: &XmlLimits) -> Result<Document<'a>, XmlError> {
    if text.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    // roxmltree builds the tree iteratively, so depth and attribute counts are checked after
    // parsing; the size and node limits bound the work done before that.
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => {
            let (line, column) = doctype_position(text);
            XmlError::DtdRefused { line, column }
        }
        roxmltree::Error::NodesLimitReached => XmlError::TooManyNodes {
            limit: limits.max_nodes,
        },
        other => {
            let pos = other.pos();
            XmlError::Malformed {
                line: pos.row,
                column: pos.col,
                message: other.to_string(),
            }
        }
    })?;
    // roxmltree accepts an empty `<!DOCTYPE x>`: refuse it too.
    let prolog_end = doc.root_element().range().start.min(text.len());
    if let Some(found) = find_doctype(&text[..prolog_end], &doc) {
        let pos = doc.text_pos_at(found);
        return Err(XmlError::DtdRefused {
            line: pos.row,
            column: pos.col,
        });
    }
    check_shape(&doc, limits)?;
    Ok(doc)
}

/// Position of a DOCTYPE keyword outside comments and PIs in the prolog, if any.
fn find_doctype(prolog: &str, doc: &Document) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = prolog[from..].find("<!DOCTYPE") {
        let at = from + rel;
        let inside_other = doc
            .root()
            .children()
            .filter(|n| !n.is_element())
            .any(|n| n.range().start < at && at < n.range().end);
        if !inside_other {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn doctype_position(text: &str) -> (u32, u32) {
    let offset = text.find("<!DOCTYPE").unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u32
        + 1;
    (line, column)
}

fn check_shape(doc: &Document, limits: &XmlLimits) -> Result<(), XmlError> {
    let mut stack: Vec<(Node, usize)> = vec![(doc.root_element(), 1)];
    while let Some((node, depth)) = stack.pop() {
        if depth > limits.max_depth {
            let pos = doc.text_pos_at(node.range().start);
            return Err(XmlError::TooDeep {
                line: pos.row,
                column: pos.col,
                limit: limits.max_depth,
            });
        }
        let declared = declared_namespace_count(node);
        if node.attributes().len() + declared > limits.max_attributes {
            let pos = doc.text_pos_at(node.range().start);
            return Err(XmlError::TooManyAttributes {
                line: pos.row,
                column: pos.col,
                limit: limits.max_attributes,
            });
        }
        for child in node.children().filter(|c| c.is_element()) {
            stack.push((child, depth + 1));
        }
    }
    Ok(())
}

/// Namespace declarations written on `node` itself (not inherited).
fn declared_namespace_count(node: Node) -> usize {
    let parent_ns: Vec<(Option<&str>, &str)> = match node.parent_element() {
        Some(p) => p.namespaces().map(|n| (n.name(), n.uri())).collect(),
        None => Vec::new(),
    };
    node.namespaces()
        .filter(|n| !parent_ns.contains(&(n.name(), n.uri())))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctype_with_entities_is_refused() {
        let text =
            "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">]>\n<lolz>&lol;</lolz>";
        let err = parse(text, &XmlLimits::default()).err();
        assert!(
            matches!(err, Some(XmlError::DtdRefused { line: 2, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn empty_doctype_is_refused() {
        let err = parse("<!DOCTYPE a>\n<a/>", &XmlLimits::default()).err();
        assert!(
            matches!(err, Some(XmlError::DtdRefused { line: 1, column: 1 })),
            "{err:?}"
        );
    }

    #[test]
    fn doctype_text_inside_a_comment_is_not_a_doctype() {
        assert!(parse("<!-- <!DOCTYPE a> --><a/>", &XmlLimits::default()).is_ok());
    }

    #[test]
    fn undefined_entity_is_an_error_with_position() {
        let err = parse("<a>\n  &ext;</a>", &XmlLimits::default()).err();
        assert!(
            matches!(err, Some(XmlError::Malformed { line: 2, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let limits = XmlLimits {
            max_depth: 10,
            ..XmlLimits::default()
        };
        let text = format!("{}{}", "<a>".repeat(11), "</a>".repeat(11));
        assert!(matches!(
            parse(&text, &limits),
            Err(XmlError::TooDeep { limit: 10, .. })
        ));
        let text = format!("{}{}", "<a>".repeat(10), "</a>".repeat(10));
        assert!(parse(&text, &limits).is_ok());
    }

    #[test]
    fn too_many_attributes_are_refused() {
        let limits = XmlLimits {
            max_attributes: 3,
            ..XmlLimits::default()
        };
        assert!(parse("<a x='1' y='2' xmlns:p='u'/>", &limits).is_ok());
        let err = parse("<a x='1' y='2' z='3' xmlns:p='u'/>", &limits).err();
        assert!(matches!(
            err,
            Some(XmlError::TooManyAttributes {
                line: 1,
                column: 1,
                ..
            })
        ));
    }

    #[test]
    fn too_many_nodes_are_refused() {
        let limits = XmlLimits {
            max_nodes: 5,
            ..XmlLimits::default()
        };
        let text = format!("<a>{}</a>", "<b/>".repeat(10));
        assert!(matches!(
            parse(&text, &limits),
            Err(XmlError::TooManyNodes { limit: 5 })
        ));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let limits = XmlLimits {
            max_bytes: 8,
            ..XmlLimits::default()
        };
        assert!(matches!(
            parse_bytes(b"<a>123456</a>", &limits),
            Err(XmlError::TooLarge { size: 13, limit: 8 })
        ));
    }

    #[test]
    fn non_utf8_input_is_refused() {
        assert!(matches!(
            parse_bytes(b"<a>\xff</a>", &XmlLimits::default()),
            Err(XmlError::NotUtf8 { offset: 3 })
        ));
    }

    #[test]
    fn mismatched_tag_reports_line_and_column() {
        let err = parse("<a>\n<b></c></a>", &XmlLimits::default()).err();
        assert!(
            matches!(
                err,
                Some(XmlError::Malformed {
                    line: 2,
                    column: 4,
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
