"""Reference canonicalization with libxml2 (through lxml) for the c14n corpus test.

Usage: c14n_reference.py < LIST, where each line of LIST is "FILE.xml<TAB>PREFIXES".
Prints one line per result, "<file> <what> <mode> <base64>", where <file> is the line number
(from 0) of the file in LIST, <what> is "doc" or the index of an
element (document order, root excluded) and <mode> is inc, inc-c, exc, exc-c, excp, excp-c
(the last two with the InclusiveNamespaces prefix list given as the second argument).

Two limits of lxml's API (not of libxml2) shape what is compared:
- lxml canonicalizes a subtree by making the element the root of a fake document, so with
  inclusive c14n the xml:* attributes the element would inherit from its ancestors (Canonical
  XML 1.0, section 2.4) are lost. Inclusive modes are therefore not emitted for elements whose
  ancestors carry xml:* attributes.
- lxml drops InclusiveNamespaces prefixes that do not occur in the document, "#default"
  included, so the corpus' prefix lists name real prefixes only.
"""
import base64
import sys

from lxml import etree

def reference(index, path, prefixes, out):
    parser = etree.XMLParser(resolve_entities=False, remove_blank_text=False, strip_cdata=True,
                             no_network=True, huge_tree=False)
    tree = etree.parse(path, parser)
    modes = [("inc", False, False, None), ("inc-c", False, True, None),
             ("exc", True, False, None), ("exc-c", True, True, None)]
    if prefixes:
        modes += [("excp", True, False, prefixes), ("excp-c", True, True, prefixes)]
    for name, exc, com, incl in modes:
        out.append("%d doc %s %s" % (index, name, b64(c14n(tree, exc, com, incl))))
    xml_ns = "{http://www.w3.org/XML/1998/namespace}"
    elements = list(tree.getroot().iter(tag=etree.Element))[1:]
    for i, el in enumerate(elements, 1):
        inherits_xml_attrs = any(k.startswith(xml_ns) for a in el.iterancestors() for k in a.attrib)
        for name, exc, com, incl in modes:
            if inherits_xml_attrs and not exc:
                continue
            out.append("%d %d %s %s" % (index, i, name, b64(c14n(el, exc, com, incl))))


def b64(data):
    return base64.b64encode(data).decode()


def c14n(node, exclusive, with_comments, incl):
    kwargs = dict(method="c14n", exclusive=exclusive, with_comments=with_comments)
    if incl:
        kwargs["inclusive_ns_prefixes"] = incl
    return etree.tostring(node, **kwargs)


out = []
for index, line in enumerate(sys.stdin.read().splitlines()):
    path, _, prefixes = line.partition("\t")
    reference(index, path, prefixes.split() or None, out)
sys.stdout.write("\n".join(out) + "\n")
