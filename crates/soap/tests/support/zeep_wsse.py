"""WS-Security with Python zeep + xmlsec, as an independent peer for the interop tests.

Usage:
  zeep_wsse.py sign KEY.pem CERT.pem IN.xml OUT.xml (x509|binary)   # RSA-SHA256, SHA-256
  zeep_wsse.py verify CERT.pem IN.xml                               # exit 0 valid, 1 invalid
  zeep_wsse.py batch < LINES   # each line: the arguments above, tab-separated; prints one
                               # exit status per line (imports zeep once: it is slow to load)
"""
import sys

import xmlsec
from lxml import etree
from zeep.wsse import signature


def main(argv):
    if argv[1] == "sign":
        key, cert, src, dst, form = argv[2:7]
        cls = signature.BinarySignature if form == "binary" else signature.Signature
        envelope = etree.parse(src).getroot()
        wsse = cls(key, cert, signature_method=xmlsec.Transform.RSA_SHA256,
                   digest_method=xmlsec.Transform.SHA256)
        header = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Header")
        wsse.apply(envelope, header)
        with open(dst, "wb") as f:
            f.write(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
        return 0
    if argv[1] == "verify":
        cert, src = argv[2:4]
        envelope = etree.parse(src).getroot()
        try:
            signature.verify_envelope(envelope, cert)
        except signature.SignatureVerificationFailed:
            print("zeep: signature verification failed", file=sys.stderr)
            return 1
        return 0
    if argv[1] == "batch":
        for line in sys.stdin.read().splitlines():
            print(main([argv[0]] + line.split("\t")))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
