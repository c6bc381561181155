//! Safe XML reading and small, correct XML writing for ШЭП envelopes.
//! Reading never expands DTDs or entities and enforces size, depth, node and attribute limits;
//! writing never emits a character XML 1.0 forbids or an unescaped markup character.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use roxmltree::{Document, Node, NodeType, ParsingOptions};

use crate::EnvelopeError;

/// Limits applied to every document this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted (the envelope counts as depth 1).
    pub max_depth: usize,
    /// Most nodes (elements, text, comments…) in one document.
    pub max_nodes: u32,
    /// Most attributes (namespace declarations excluded) on one element.
    pub max_attributes: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            max_depth: 128,
            max_nodes: 2_000_000,
            max_attributes: 64,
        }
    }
}

/// Parses `text` with DTDs refused and `limits` enforced.
pub fn parse<'i>(text: &'i str, limits: &XmlLimits) -> Result<Document<'i>, EnvelopeError> {
    if text.len() > limits.max_bytes {
        return Err(EnvelopeError::TooLarge {
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    // Nodes come in document order, so a parent's depth is known before its children's.
    let count = doc.descendants().count();
    let mut depths = vec![0usize; count + 1];
    for node in doc.descendants().filter(|n| n.is_element()) {
        let parent_depth = node
            .parent()
            .and_then(|p| depths.get(p.id().get_usize()).copied())
            .unwrap_or(0);
        let depth = parent_depth + 1;
        if let Some(slot) = depths.get_mut(node.id().get_usize()) {
            *slot = depth;
        }
        if depth > limits.max_depth {
            let pos = doc.text_pos_at(node.range().start);
            return Err(EnvelopeError::TooDeep {
                limit: limits.max_depth,
                line: pos.row,
                column: pos.col,
            });
        }
        if node.attributes().len() > limits.max_attributes {
            let pos = doc.text_pos_at(node.range().start);
            return Err(EnvelopeError::TooManyAttributes {
                limit: limits.max_attributes,
                line: pos.row,
                column: pos.col,
            });
        }
    }
    Ok(doc)
}

/// True for characters XML 1.0 allows in content.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Checks that `value` of `field` holds only characters XML 1.0 can carry.
pub fn check_chars(field: &str, value: &str) -> Result<(), EnvelopeError> {
    match value.chars().position(|c| !is_xml_char(c)) {
        None => Ok(()),
        Some(at) => Err(EnvelopeError::Invalid {
            field: field.to_owned(),
            problem: format!("character {at} cannot be carried in XML 1.0"),
        }),
    }
}

/// Appends `text` escaped for element content.
pub fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

/// Appends `text` escaped for a double-quoted attribute value.
pub fn escape_attr(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            _ => out.push(c),
        }
    }
}

/// A tiny streaming writer: callers open and close elements in order; text is escaped here.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
    open: Vec<String>,
    tag_open: bool,
}

impl XmlWriter {
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(2048),
            open: Vec::new(),
            tag_open: false,
        }
    }

    pub fn declaration(&mut self) {
        self.out
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    }

    fn close_start_tag(&mut self) {
        if self.tag_open {
            self.out.push('>');
            self.tag_open = false;
        }
    }

    /// Opens `<name`; attributes may follow until content is written.
    pub fn start(&mut self, name: &str) {
        self.close_start_tag();
        self.out.push('<');
        self.out.push_str(name);
        self.open.push(name.to_owned());
        self.tag_open = true;
    }

    pub fn attr(&mut self, name: &str, value: &str) {
        debug_assert!(self.tag_open, "attribute written after content");
        let _ = write!(self.out, " {name}=\"");
        escape_attr(&mut self.out, value);
        self.out.push('"');
    }

    pub fn text(&mut self, text: &str) {
        self.close_start_tag();
        escape_text(&mut self.out, text);
    }

    /// Writes an already well-formed, namespace-complete fragment verbatim.
    pub fn raw(&mut self, fragment: &str) {
        self.close_start_tag();
        self.out.push_str(fragment);
    }

    pub fn end(&mut self) {
        let Some(name) = self.open.pop() else { return };
        if self.tag_open {
            self.out.push_str("/>");
            self.tag_open = false;
        } else {
            let _ = write!(self.out, "</{name}>");
        }
    }

    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.start(name);
        self.text(text);
        self.end();
    }

    pub fn leaf_opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.leaf(name, text);
        }
    }

    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.end();
        }
        self.out
    }
}

/// The qualified name (`p:local` or `local`) of an element as written in the source.
fn element_qname<'i>(node: Node<'_, 'i>) -> &'i str {
    let src = node.document().input_text();
    let start = node.range().start + 1;
    let rest = src.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(rest.len());
    &rest[..end]
}

fn attr_qname<'i>(node: Node<'_, 'i>, attr: &roxmltree::Attribute<'_, 'i>) -> &'i str {
    let src = node.document().input_text();
    src.get(attr.range_qname()).unwrap_or_else(|| attr.name())
}

fn prefix_of(qname: &str) -> Option<&str> {
    qname.split_once(':').map(|(p, _)| p)
}

const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Prefixes the subtree under `node` (inclusive) uses in names and in `xsi:type` values.
fn used_prefixes<'i>(node: Node<'_, 'i>, into: &mut BTreeSet<Option<String>>) {
    for n in node.descendants().filter(|n| n.is_element()) {
        into.insert(prefix_of(element_qname(n)).map(str::to_owned));
        for a in n.attributes() {
            if let Some(p) = prefix_of(attr_qname(n, &a)) {
                into.insert(Some(p.to_owned()));
            }
            if a.namespace() == Some(XSI_NS) && a.name() == "type" {
                into.insert(prefix_of(a.value()).map(str::to_owned));
            }
        }
    }
}

/// Namespace bindings (prefix, uri) an element declares itself, compared with its parent.
fn own_bindings(node: Node<'_, '_>) -> Vec<(Option<String>, String)> {
    let parent: Vec<(Option<&str>, &str)> = node
        .parent_element()
        .map(|p| p.namespaces().map(|ns| (ns.name(), ns.uri())).collect())
        .unwrap_or_default();
    let mut own: Vec<(Option<String>, String)> = node
        .namespaces()
        .filter(|ns| ns.name() != Some("xml"))
        .filter(|ns| !parent.contains(&(ns.name(), ns.uri())))
        .map(|ns| (ns.name().map(str::to_owned), ns.uri().to_owned()))
        .collect();
    // A default namespace undeclared here (xmlns="") when the parent had one.
    if node.default_namespace().is_none() && parent.iter().any(|(p, _)| p.is_none()) {
        own.push((None, String::new()));
    }
    own
}

fn write_binding(out: &mut String, prefix: Option<&str>, uri: &str) {
    match prefix {
        Some(p) => {
            let _ = write!(out, " xmlns:{p}=\"");
        }
        None => out.push_str(" xmlns=\""),
    }
    escape_attr(out, uri);
    out.push('"');
}

/// Serialises the element `node` as a standalone, namespace-complete fragment: the top element
/// declares what it declared in the source plus the inherited bindings its subtree uses, so the
/// fragment reads the same outside the envelope (and canonicalises the same) as inside it.
pub fn serialize_element(node: Node<'_, '_>) -> String {
    let mut out = String::with_capacity(node.range().len() + 64);
    write_node(&mut out, node, true);
    out
}

/// Serialises the children of `node` (elements, text, comments, PIs) as a fragment.
pub fn serialize_children(node: Node<'_, '_>) -> String {
    let mut out = String::new();
    for child in node.children() {
        write_node(&mut out, child, true);
    }
    out
}

fn write_node(out: &mut String, node: Node<'_, '_>, top: bool) {
    match node.node_type() {
        NodeType::Element => {
            let qname = element_qname(node);
            out.push('<');
            out.push_str(qname);
            let mut bindings = own_bindings(node);
            if top {
                let mut used = BTreeSet::new();
                used_prefixes(node, &mut used);
                for prefix in used {
                    if prefix.as_deref() == Some("xml")
                        || bindings.iter().any(|(p, _)| *p == prefix)
                    {
                        continue;
                    }
                    if let Some(uri) = node.lookup_namespace_uri(prefix.as_deref()) {
                        bindings.push((prefix, uri.to_owned()));
                    }
                }
            }
            for (prefix, uri) in &bindings {
                write_binding(out, prefix.as_deref(), uri);
            }
            for a in node.attributes() {
                let _ = write!(out, " {}=\"", attr_qname(node, &a));
                escape_attr(out, a.value());
                out.push('"');
            }
            if node.has_children() {
                out.push('>');
                for child in node.children() {
                    write_node(out, child, false);
                }
                let _ = write!(out, "</{qname}>");
            } else {
                out.push_str("/>");
            }
        }
        NodeType::Text => escape_text(out, node.text().unwrap_or("")),
        NodeType::Comment => {
            let _ = write!(out, "<!--{}-->", node.text().unwrap_or(""));
        }
        NodeType::PI => {
            if let Some(pi) = node.pi() {
                match pi.value {
                    Some(v) => {
                        let _ = write!(out, "<?{} {}?>", pi.target, v);
                    }
                    None => {
                        let _ = write!(out, "<?{}?>", pi.target);
                    }
                }
            }
        }
        NodeType::Root => {}
    }
}

/// Position of `node` as (line, column), for error messages.
pub fn position(node: Node<'_, '_>) -> (u32, u32) {
    let pos = node.document().text_pos_at(node.range().start);
    (pos.row, pos.col)
}

/// Reads a sequence of child elements in schema order, refusing anything the schema does not
/// allow: stray text, elements out of order, unknown elements, and (for unqualified local
/// elements, as the ШЭП schemas declare them) a namespace on a child.
pub struct Seq<'a, 'i> {
    parent: Node<'a, 'i>,
    path: String,
    items: Vec<Node<'a, 'i>>,
    at: usize,
}

impl<'a, 'i> Seq<'a, 'i> {
    pub fn new(parent: Node<'a, 'i>, path: &str) -> Result<Self, EnvelopeError> {
        let mut items = Vec::new();
        for child in parent.children() {
            match child.node_type() {
                NodeType::Element => items.push(child),
                NodeType::Text if !child.text().unwrap_or("").trim().is_empty() => {
                    return Err(schema_error(
                        child,
                        path,
                        "unexpected text between elements",
                    ));
                }
                _ => {}
            }
        }
        Ok(Self {
            parent,
            path: path.to_owned(),
            items,
            at: 0,
        })
    }

    fn peek_is(&self, name: &str) -> bool {
        self.items
            .get(self.at)
            .is_some_and(|n| n.tag_name().name() == name && n.tag_name().namespace().is_none())
    }

    pub fn optional(&mut self, name: &str) -> Option<Node<'a, 'i>> {
        if self.peek_is(name) {
            self.at += 1;
            self.items.get(self.at - 1).copied()
        } else {
            None
        }
    }

    pub fn required(&mut self, name: &str) -> Result<Node<'a, 'i>, EnvelopeError> {
        match self.optional(name) {
            Some(node) => Ok(node),
            None => {
                let at = self.items.get(self.at).copied().unwrap_or(self.parent);
                let found = match self.items.get(self.at) {
                    Some(n) => format!("found <{}>", element_qname(*n)),
                    None => "found the end of the element".to_owned(),
                };
                Err(schema_error(
                    at,
                    &self.path,
                    &format!("expected <{name}>, {found}"),
                ))
            }
        }
    }

    pub fn many(&mut self, name: &str) -> Vec<Node<'a, 'i>> {
        let mut out = Vec::new();
        while let Some(n) = self.optional(name) {
            out.push(n);
        }
        out
    }

    pub fn finish(self) -> Result<(), EnvelopeError> {
        match self.items.get(self.at) {
            None => Ok(()),
            Some(n) => Err(schema_error(
                *n,
                &self.path,
                &format!("unexpected element <{}>", element_qname(*n)),
            )),
        }
    }
}

/// A schema violation located at `node`.
pub fn schema_error(node: Node<'_, '_>, path: &str, problem: &str) -> EnvelopeError {
    let (line, column) = position(node);
    EnvelopeError::Schema {
        path: path.to_owned(),
        line,
        column,
        problem: problem.to_owned(),
    }
}

/// The text of a simple-content element; child elements are refused.
pub fn simple_text(node: Node<'_, '_>, path: &str) -> Result<String, EnvelopeError> {
    let mut out = String::new();
    for child in node.children() {
        match child.node_type() {
            NodeType::Text => out.push_str(child.text().unwrap_or("")),
            NodeType::Element => {
                return Err(schema_error(
                    child,
                    path,
                    "a simple value cannot hold elements",
                ))
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtd_is_refused() {
        let text = "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>";
        assert!(matches!(
            parse(text, &XmlLimits::default()),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn depth_limit_is_enforced_with_position() {
        let text = format!("{}{}", "<a>".repeat(10), "</a>".repeat(10));
        let limits = XmlLimits {
            max_depth: 5,
            ..XmlLimits::default()
        };
        match parse(&text, &limits) {
            Err(EnvelopeError::TooDeep {
                limit,
                line,
                column,
            }) => {
                assert_eq!((limit, line, column), (5, 1, 16));
            }
            other => panic!("expected TooDeep, got {other:?}"),
        }
    }

    #[test]
    fn size_limit_is_enforced() {
        let limits = XmlLimits {
            max_bytes: 10,
            ..XmlLimits::default()
        };
        assert!(matches!(
            parse("<a>0123456789</a>", &limits),
            Err(EnvelopeError::TooLarge {
                size: 17,
                limit: 10
            })
        ));
    }

    #[test]
    fn attribute_limit_is_enforced() {
        let limits = XmlLimits {
            max_attributes: 2,
            ..XmlLimits::default()
        };
        assert!(matches!(
            parse("<a x='1' y='2' z='3'/>", &limits),
            Err(EnvelopeError::TooManyAttributes { .. })
        ));
    }

    #[test]
    fn extracted_element_keeps_used_inherited_namespaces_only() {
        let text = r#"<e:Env xmlns:e="urn:env" xmlns:p="urn:p" xmlns:unused="urn:u" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><e:Body><p:doc xmlns:own="urn:own" xsi:type="p:T"><own:x a="1 &amp; 2">t&lt;</own:x></p:doc></e:Body></e:Env>"#;
        let doc = parse(text, &XmlLimits::default()).expect("parses");
        let node = doc
            .descendants()
            .find(|n| n.has_tag_name(("urn:p", "doc")))
            .expect("doc element");
        let out = serialize_element(node);
        assert_eq!(
            out,
            r#"<p:doc xmlns:own="urn:own" xmlns:p="urn:p" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:T"><own:x a="1 &amp; 2">t&lt;</own:x></p:doc>"#
        );
        // And it parses standalone.
        assert!(parse(&out, &XmlLimits::default()).is_ok());
    }

    #[test]
    fn writer_escapes_and_self_closes() {
        let mut w = XmlWriter::new();
        w.start("a");
        w.attr("b", "\"<&>\n");
        w.leaf("c", "x<y & z\r");
        w.start("d");
        w.end();
        let out = w.finish();
        assert_eq!(
            out,
            "<a b=\"&quot;&lt;&amp;&gt;&#10;\"><c>x&lt;y &amp; z&#13;</c><d/></a>"
        );
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(check_chars("f", "ok\ttext").is_ok());
        assert!(check_chars("f", "bad\u{1}").is_err());
    }
}
