"""Python zeep + xmlsec baseline for the WS-Security benchmark: build and sign the same
SendMessage-like envelope (1 KiB data, RSA-2048, RSA-SHA256/SHA-256) in a loop on one core.

Usage: zeep_sign.py KEY.pem CERT.pem [SECONDS]   -> prints "zeep_sign_per_s <rate> cpu_per_s <rate>"
"""
import sys
import time

import xmlsec
from lxml import etree
from zeep.wsse import signature

DATA = ("&lt;BIN&gt;987654321098&lt;/BIN&gt;" * 40)[:1024]
DATA = DATA[: DATA.rfind(";") + 1]


def envelope(n):
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/>'
        '<soapenv:Body><ns2:SendMessage xmlns:ns2="http://bip.bee.kz/SyncChannel/v10/Types"><request>'
        "<requestInfo><messageId>00000000-0000-4000-8000-%012d</messageId><serviceId>GbdulInfoByBin_v2"
        "</serviceId><messageDate>2026-11-23T18:00:00.000+05:00</messageDate><sender><senderId>qaqpa"
        "</senderId><password>secret</password></sender></requestInfo><requestData><data "
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xsi:type="xs:string">%s</data></requestData></request></ns2:SendMessage></soapenv:Body>'
        "</soapenv:Envelope>" % (n, DATA)
    )


def main():
    key, cert = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    wsse = signature.Signature(key, cert, signature_method=xmlsec.Transform.RSA_SHA256,
                               digest_method=xmlsec.Transform.SHA256)
    n = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        env = etree.fromstring(envelope(n).encode())
        wsse.apply(env, env[0])
        etree.tostring(env)
        n += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print("zeep_sign_per_s %.1f cpu_per_s %.1f" % (n / wall, n / cpu))


if __name__ == "__main__":
    main()
