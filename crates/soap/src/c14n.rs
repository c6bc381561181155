//! Canonical XML 1.0 and Exclusive XML Canonicalization 1.0, with and without comments.
//!
//! Works on documents read by [`crate::xml`], over a whole document or over the subtree of one
//! element (the document subset an XML-DSig `#id` reference selects), optionally leaving out one
//! descendant subtree (the enveloped-signature transform). The output is byte-identical to
//! libxml2's (checked against `xmllint` and lxml on the corpus in `tests/c14n-corpus`).
//! This module must never change what a document says: it only serializes it canonically.
//! It recurses once per element level, so it relies on the depth bound of [`crate::xml`].

use crate::xml::{Document, Node, NodeId};
use std::borrow::Cow;

/// The XML namespace (`xml:` prefix); never rendered as a namespace declaration.
pub const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// The four canonicalization algorithms implemented here, with their XML-DSig URIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum C14nMethod {
    /// Canonical XML 1.0, comments removed.
    Inclusive,
    /// Canonical XML 1.0 with comments.
    InclusiveWithComments,
    /// Exclusive XML Canonicalization 1.0, comments removed.
    Exclusive,
    /// Exclusive XML Canonicalization 1.0 with comments.
    ExclusiveWithComments,
}

impl C14nMethod {
    /// The algorithm URI used in `CanonicalizationMethod` and `Transform`.
    pub const fn uri(self) -> &'static str {
        match self {
            C14nMethod::Inclusive => "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
            C14nMethod::InclusiveWithComments => {
                "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
            }
            C14nMethod::Exclusive => "http://www.w3.org/2001/10/xml-exc-c14n#",
            C14nMethod::ExclusiveWithComments => {
                "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
            }
        }
    }

    /// The method named by an algorithm URI, if it is one of the four.
    pub fn from_uri(uri: &str) -> Option<Self> {
        [
            C14nMethod::Inclusive,
            C14nMethod::InclusiveWithComments,
            C14nMethod::Exclusive,
            C14nMethod::ExclusiveWithComments,
        ]
        .into_iter()
        .find(|m| m.uri() == uri)
    }

    /// Exclusive (only visibly utilized namespaces are rendered)?
    pub const fn is_exclusive(self) -> bool {
        matches!(
            self,
            C14nMethod::Exclusive | C14nMethod::ExclusiveWithComments
        )
    }

    /// Are comments kept?
    pub const fn with_comments(self) -> bool {
        matches!(
            self,
            C14nMethod::InclusiveWithComments | C14nMethod::ExclusiveWithComments
        )
    }

    /// The same algorithm without comments (what a bare-name `#id` or `""` reference yields:
    /// XML-DSig removes comment nodes when dereferencing such URIs).
    pub const fn without_comments(self) -> Self {
        match self {
            C14nMethod::Inclusive | C14nMethod::InclusiveWithComments => C14nMethod::Inclusive,
            C14nMethod::Exclusive | C14nMethod::ExclusiveWithComments => C14nMethod::Exclusive,
        }
    }
}

/// A configured canonicalizer: the method plus, for exclusive c14n, the
/// `InclusiveNamespaces PrefixList` (`#default` names the default namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canonicalizer {
    method: C14nMethod,
    inclusive_prefixes: Vec<String>,
}

impl Canonicalizer {
    /// A canonicalizer for `method` with an empty prefix list.
    pub fn new(method: C14nMethod) -> Self {
        Canonicalizer {
            method,
            inclusive_prefixes: Vec::new(),
        }
    }

    /// Sets the InclusiveNamespaces PrefixList (ignored by inclusive c14n, which renders all
    /// namespaces anyway). `#default` (or an empty string) stands for the default namespace.
    pub fn with_inclusive_prefixes<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inclusive_prefixes = prefixes
            .into_iter()
            .map(Into::into)
            .map(|p| if p == "#default" { String::new() } else { p })
            .collect();
        self
    }

    /// The method in use.
    pub fn method(&self) -> C14nMethod {
        self.method
    }

    /// The InclusiveNamespaces PrefixList (the default namespace as an empty string).
    pub fn inclusive_prefixes(&self) -> &[String] {
        &self.inclusive_prefixes
    }

    /// The same canonicalizer with comments removed.
    pub fn without_comments(&self) -> Canonicalizer {
        Canonicalizer {
            method: self.method.without_comments(),
            inclusive_prefixes: self.inclusive_prefixes.clone(),
        }
    }

    /// Canonical form of the whole document.
    pub fn document(&self, doc: &Document) -> Vec<u8> {
        self.document_excluding(doc, None)
    }

    /// Canonical form of the whole document without the subtree of `excluded`.
    pub fn document_excluding(&self, doc: &Document, excluded: Option<Node>) -> Vec<u8> {
        let mut out = Vec::with_capacity(doc.input_text().len());
        let mut writer = self.writer(&mut out, excluded.map(|n| n.id()));
        let mut after_root = false;
        for child in doc.root().children() {
            if Some(child.id()) == writer.excluded {
                continue;
            }
            if child.is_element() {
                writer.element(child, &[], false);
                after_root = true;
            } else if child.is_comment() && writer.with_comments || child.is_pi() {
                if after_root {
                    writer.out.push(b'\n');
                }
                writer.leaf(child);
                if !after_root {
                    writer.out.push(b'\n');
                }
            }
        }
        out
    }

    /// Canonical form of the document subset made of `node` and its descendants (with the
    /// namespace context and, for inclusive c14n, the `xml:*` attributes it inherits).
    pub fn subtree(&self, node: Node) -> Vec<u8> {
        self.subtree_excluding(node, None)
    }

    /// Like [`Canonicalizer::subtree`], leaving out the subtree of `excluded`.
    pub fn subtree_excluding(&self, node: Node, excluded: Option<Node>) -> Vec<u8> {
        if !node.is_element() {
            if node.is_root() {
                return self.document_excluding(node.document(), excluded);
            }
            let mut out = Vec::new();
            let mut writer = self.writer(&mut out, excluded.map(|n| n.id()));
            writer.leaf(node);
            return out;
        }
        let mut out = Vec::with_capacity(node.range().len());
        let mut writer = self.writer(&mut out, excluded.map(|n| n.id()));
        if Some(node.id()) != writer.excluded {
            writer.element(node, &[], true);
        }
        out
    }

    fn writer<'o>(&'o self, out: &'o mut Vec<u8>, excluded: Option<NodeId>) -> Writer<'o> {
        Writer {
            exclusive: self.method.is_exclusive(),
            with_comments: self.method.with_comments(),
            inclusive_prefixes: &self.inclusive_prefixes,
            excluded,
            out,
        }
    }
}

/// A namespace declaration rendered by an output ancestor: (prefix, "" for default; URI).
type Rendered<'a> = (&'a str, &'a str);

struct Writer<'o> {
    exclusive: bool,
    with_comments: bool,
    inclusive_prefixes: &'o [String],
    excluded: Option<NodeId>,
    out: &'o mut Vec<u8>,
}

/// The qualified name of an element as written in the source.
pub(crate) fn element_qname<'i>(node: Node<'_, 'i>) -> &'i str {
    let text = node.document().input_text();
    let start = node.range().start + 1;
    let rest = text.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map(|(p, _)| p).unwrap_or("")
}

fn lookup<'a>(rendered: &[Rendered<'a>], prefix: &str) -> Option<&'a str> {
    rendered
        .iter()
        .rev()
        .find(|(p, _)| *p == prefix)
        .map(|(_, u)| *u)
}

impl Writer<'_> {
    fn leaf(&mut self, node: Node) {
        if node.is_comment() {
            self.out.extend_from_slice(b"<!--");
            self.out
                .extend_from_slice(node.text().unwrap_or("").as_bytes());
            self.out.extend_from_slice(b"-->");
        } else if let Some(pi) = node.pi() {
            self.out.extend_from_slice(b"<?");
            self.out.extend_from_slice(pi.target.as_bytes());
            if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
                self.out.push(b' ');
                self.out.extend_from_slice(value.as_bytes());
            }
            self.out.extend_from_slice(b"?>");
        } else if let Some(text) = node.text().filter(|_| node.is_text()) {
            escape_text(text, self.out);
        }
    }

    /// Writes `node` (an element) given the declarations rendered by its output ancestors.
    /// `apex` is true for the top of a subtree whose ancestors are outside the node set.
    fn element<'a, 'i: 'a>(&mut self, node: Node<'a, 'i>, rendered: &[Rendered<'a>], apex: bool) {
        let text = node.document().input_text();
        let qname = element_qname(node);

        // Namespace declarations to render on this element.
        let mut decls: Vec<Rendered<'a>> = Vec::new();
        let consider = |prefix: &str, decls: &mut Vec<Rendered<'a>>| {
            if prefix == "xml" || decls.iter().any(|(p, _)| *p == prefix) {
                return;
            }
            let in_scope = node
                .namespaces()
                .find(|ns| ns.name().unwrap_or("") == prefix);
            if prefix.is_empty() {
                let uri = in_scope.map(|ns| ns.uri()).unwrap_or("");
                if lookup(rendered, "").unwrap_or("") != uri {
                    decls.push(("", uri));
                }
            } else if let Some(ns) = in_scope {
                if lookup(rendered, prefix) != Some(ns.uri()) {
                    decls.push((ns.name().unwrap_or(""), ns.uri()));
                }
            }
        };
        if self.exclusive {
            consider(prefix_of(qname), &mut decls);
            for attr in node.attributes() {
                let prefix = text.get(attr.range_qname()).map(prefix_of).unwrap_or("");
                if !prefix.is_empty() {
                    consider(prefix, &mut decls);
                }
            }
            for prefix in self.inclusive_prefixes {
                consider(prefix, &mut decls);
            }
        } else {
            let prefixes: Vec<&str> = node
                .namespaces()
                .map(|ns| ns.name().unwrap_or(""))
                .collect();
            for prefix in prefixes {
                consider(prefix, &mut decls);
            }
        }
        decls.sort_unstable_by(|a, b| a.0.cmp(b.0));

        // Attributes, sorted by namespace URI then local name.
        let mut attrs: Vec<(&str, &str, &str, &str)> = node
            .attributes()
            .map(|a| {
                let qname = text.get(a.range_qname()).unwrap_or(a.name());
                (a.namespace().unwrap_or(""), a.name(), qname, a.value())
            })
            .collect();
        if apex && !self.exclusive {
            // Canonical XML 1.0: xml:* attributes are inherited from ancestors outside the set.
            for ancestor in node.ancestors().skip(1).filter(|a| a.is_element()) {
                for a in ancestor.attributes() {
                    if a.namespace() == Some(XML_NAMESPACE)
                        && !attrs
                            .iter()
                            .any(|x| x.0 == XML_NAMESPACE && x.1 == a.name())
                    {
                        let qname = text.get(a.range_qname()).unwrap_or(a.name());
                        attrs.push((XML_NAMESPACE, a.name(), qname, a.value()));
                    }
                }
            }
        }
        attrs.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

        self.out.push(b'<');
        self.out.extend_from_slice(qname.as_bytes());
        for (prefix, uri) in &decls {
            if prefix.is_empty() {
                self.out.extend_from_slice(b" xmlns=\"");
            } else {
                self.out.extend_from_slice(b" xmlns:");
                self.out.extend_from_slice(prefix.as_bytes());
                self.out.extend_from_slice(b"=\"");
            }
            escape_attribute(uri, self.out);
            self.out.push(b'"');
        }
        for (_, _, qname, value) in &attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(qname.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape_attribute(value, self.out);
            self.out.push(b'"');
        }
        self.out.push(b'>');

        let context: Cow<[Rendered<'a>]> = if decls.is_empty() {
            Cow::Borrowed(rendered)
        } else {
            let mut c = rendered.to_vec();
            c.extend(decls.iter().copied());
            Cow::Owned(c)
        };
        for child in node.children() {
            if Some(child.id()) == self.excluded {
                continue;
            }
            if child.is_element() {
                self.element(child, &context, false);
            } else if child.is_text() || child.is_pi() || (child.is_comment() && self.with_comments)
            {
                self.leaf(child);
            }
        }
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(qname.as_bytes());
        self.out.push(b'>');
    }
}

fn escape_text(text: &str, out: &mut Vec<u8>) {
    for &b in text.as_bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

fn escape_attribute(value: &str, out: &mut Vec<u8>) {
    for &b in value.as_bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#x9;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{parse, XmlLimits};

    fn c14n(text: &str, method: C14nMethod) -> String {
        let doc = parse(text, &XmlLimits::default()).expect("test document parses");
        String::from_utf8(Canonicalizer::new(method).document(&doc)).expect("utf-8")
    }

    #[test]
    fn attributes_are_sorted_by_namespace_uri_then_name() {
        let out = c14n(
            "<e xmlns:b='urn:a' xmlns:a='urn:b' a:x='1' b:y='2' z='3' b:a='4'/>",
            C14nMethod::Inclusive,
        );
        assert_eq!(
            out,
            "<e xmlns:a=\"urn:b\" xmlns:b=\"urn:a\" z=\"3\" b:a=\"4\" b:y=\"2\" a:x=\"1\"></e>"
        );
    }

    #[test]
    fn exclusive_drops_namespaces_not_visibly_used() {
        let out = c14n(
            "<a:e xmlns:a='urn:a' xmlns:u='urn:u'><b/></a:e>",
            C14nMethod::Exclusive,
        );
        assert_eq!(out, "<a:e xmlns:a=\"urn:a\"><b></b></a:e>");
    }

    #[test]
    fn subtree_inherits_namespaces_from_ancestors() {
        let text = "<r xmlns='urn:d' xmlns:p='urn:p' xmlns:q='urn:q'><p:s q:at='1'><t/></p:s></r>";
        let doc = parse(text, &XmlLimits::default()).expect("parses");
        let s = doc
            .descendants()
            .find(|n| n.has_tag_name(("urn:p", "s")))
            .expect("s");
        let inc = Canonicalizer::new(C14nMethod::Inclusive).subtree(s);
        assert_eq!(
            String::from_utf8_lossy(&inc),
            "<p:s xmlns=\"urn:d\" xmlns:p=\"urn:p\" xmlns:q=\"urn:q\" q:at=\"1\"><t></t></p:s>"
        );
        let exc = Canonicalizer::new(C14nMethod::Exclusive).subtree(s);
        assert_eq!(
            String::from_utf8_lossy(&exc),
            "<p:s xmlns:p=\"urn:p\" xmlns:q=\"urn:q\" q:at=\"1\"><t xmlns=\"urn:d\"></t></p:s>"
        );
    }

    #[test]
    fn comments_are_kept_only_by_the_with_comments_methods() {
        let text = "<!--a--><r><!--b-->x</r><!--c-->";
        assert_eq!(
            c14n(text, C14nMethod::InclusiveWithComments),
            "<!--a-->\n<r><!--b-->x</r>\n<!--c-->"
        );
        assert_eq!(c14n(text, C14nMethod::Exclusive), "<r>x</r>");
    }

    #[test]
    fn method_uris_round_trip() {
        for m in [
            C14nMethod::Inclusive,
            C14nMethod::InclusiveWithComments,
            C14nMethod::Exclusive,
            C14nMethod::ExclusiveWithComments,
        ] {
            assert_eq!(C14nMethod::from_uri(m.uri()), Some(m));
        }
        assert_eq!(
            C14nMethod::from_uri("http://www.w3.org/2006/12/xml-c14n11"),
            None
        );
    }
}
