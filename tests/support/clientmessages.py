"""Messages shaped like what real mail clients submit, for DKIM and submission tests.

Each has the header set, order, folding and encodings its client produces (Thunderbird,
Apple Mail, Outlook, mutt): long lists of signed fields (so the DKIM h= tag runs over
several lines), folded fields, and raw 8-bit UTF-8 in headers and body.  ``client_messages``
takes the author and recipient so one set serves any pair of test domains.
"""

from __future__ import annotations


def thunderbird(author: str, to: str) -> bytes:
    return (
        "Message-ID: <0f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b@" + author.split("@")[1] + ">\r\n"
        "Date: Sun, 22 Nov 2026 09:14:07 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "User-Agent: Mozilla Thunderbird\r\n"
        "Content-Language: en-US\r\n"
        f"To: Bob Example <{to}>\r\n"
        f"Cc: Carol <{to}>\r\n"
        f"From: Alice Example <{author}>\r\n"
        "Subject: Quarterly numbers for the board meeting next week, with the\r\n"
        " corrected forecast\r\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Hello Bob,\r\n\r\nthe numbers are below. Grüße aus Köln.\r\n\r\n-- \r\nAlice\r\n"
    ).encode("utf-8")


def apple_mail(author: str, to: str) -> bytes:
    return (
        f"From: Alice Example <{author}>\r\n"
        "Content-Type: multipart/alternative;\r\n"
        '\tboundary="Apple-Mail=_5B6C7D8E-9F0A-4B1C-8D2E-3F4A5B6C7D8E"\r\n'
        "Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))\r\n"
        "Subject: =?utf-8?Q?Re=3A_R=C3=A9union_de_d=C3=A9cembre?=\r\n"
        "In-Reply-To: <1C2D3E4F-5A6B-7C8D-9E0F-1A2B3C4D5E6F@" + to.split("@")[1] + ">\r\n"
        f"Cc: Carol Example <{to}>\r\n"
        "References: <1C2D3E4F-5A6B-7C8D-9E0F-1A2B3C4D5E6F@" + to.split("@")[1] + ">\r\n"
        "Message-Id: <8A7B6C5D-4E3F-2A1B-0C9D-8E7F6A5B4C3D@" + author.split("@")[1] + ">\r\n"
        "Date: Sun, 22 Nov 2026 09:14:07 +0100\r\n"
        f"To: Bob Example <{to}>\r\n"
        "X-Mailer: Apple Mail (2.3774.600.62)\r\n"
        "\r\n"
        "\r\n--Apple-Mail=_5B6C7D8E-9F0A-4B1C-8D2E-3F4A5B6C7D8E\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "Content-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\n"
        "R=C3=A9union le 3 d=C3=A9cembre.\r\n"
        "\r\n--Apple-Mail=_5B6C7D8E-9F0A-4B1C-8D2E-3F4A5B6C7D8E\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "Content-Type: text/html;\r\n\tcharset=us-ascii\r\n\r\n"
        "<html><body>R&eacute;union le 3 d&eacute;cembre.</body></html>\r\n"
        "\r\n--Apple-Mail=_5B6C7D8E-9F0A-4B1C-8D2E-3F4A5B6C7D8E--\r\n"
    ).encode("ascii")


def outlook(author: str, to: str) -> bytes:
    domain = author.split("@")[1]
    return (
        f"From: Alice Example <{author}>\r\n"
        f'To: "Bob Example" <{to}>\r\n'
        f'CC: "Carol Example" <{to}>\r\n'
        "Subject: RE: Contract renewal for 2027: the revised terms and the signature\r\n"
        " pages\r\n"
        "Thread-Topic: Contract renewal for 2027: the revised terms and the signature\r\n"
        " pages\r\n"
        "Thread-Index: AQHZx1b2c3d4e5f6g7h8i9j0kAAAAAAAAAAAAAAAAAA==\r\n"
        "Date: Sun, 22 Nov 2026 08:14:07 +0000\r\n"
        f"Message-ID: <AM0PR07MB1234567ABCDEF0123456789AB@{domain}>\r\n"
        f"References: <AM0PR07MB7654321FEDCBA9876543210BA@{domain}>\r\n"
        f" <AM0PR07MB1111111AAAAAA1111111111AA@{domain}>\r\n"
        f"In-Reply-To: <AM0PR07MB1111111AAAAAA1111111111AA@{domain}>\r\n"
        "Accept-Language: en-US, de-DE\r\n"
        "Content-Language: en-US\r\n"
        "X-MS-Has-Attach:\r\n"
        "X-MS-TNEF-Correlator:\r\n"
        "Content-Type: multipart/alternative;\r\n"
        '\tboundary="_000_AM0PR07MB1234567ABCDEF_"\r\n'
        "MIME-Version: 1.0\r\n"
        "\r\n"
        "--_000_AM0PR07MB1234567ABCDEF_\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "VGhlIHJldmlzZWQgdGVybXMgYXJlIGF0dGFjaGVkLg0K\r\n\r\n"
        "--_000_AM0PR07MB1234567ABCDEF_\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "PGh0bWw+PGJvZHk+VGhlIHJldmlzZWQgdGVybXMuPC9ib2R5PjwvaHRtbD4NCg==\r\n\r\n"
        "--_000_AM0PR07MB1234567ABCDEF_--\r\n"
    ).encode("ascii")


def mutt(author: str, to: str) -> bytes:
    return (
        "Date: Sun, 22 Nov 2026 09:14:07 +0100\r\n"
        f"From: Alice Example <{author}>\r\n"
        f"To: Bob Example <{to}>\r\n"
        "Subject: Re: Grüße aus Köln und das Protokoll der Sitzung vom Dienstag\r\n"
        "Message-ID: <20261122081407.GA1234@laptop.example>\r\n"
        "References: <20261121170000.GB9876@laptop.example>\r\n"
        "In-Reply-To: <20261121170000.GB9876@laptop.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Disposition: inline\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "User-Agent: Mutt/2.2.9 (2022-11-12)\r\n"
        "\r\n"
        "Hallo Bob,\r\n\r\ndas Protokoll folgt. Schöne Grüße,\r\nAlice\r\n"
    ).encode("utf-8")


def client_messages(author: str, to: str) -> dict[str, bytes]:
    """{client name: message} for every shape above."""
    return {"thunderbird": thunderbird(author, to), "apple-mail": apple_mail(author, to),
            "outlook": outlook(author, to), "mutt": mutt(author, to)}
