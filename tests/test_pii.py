"""PII scrubbing: a table of realistic messages in several languages, masked and kept, and its limits."""

import pytest

from training.pii import scrub, scrub_counted

# What people write and what the corpus must hold instead.
MASKED = [
    # phone numbers: international, national, every grouping, with words around them
    ("call +44 20 7946 0958 tonight", "call <phone> tonight"),
    ("my number is 555-123-4567", "my number is <phone>"),
    ("(020) 7946 0958 is the office", "<phone> is the office"),
    ("+1\u00a0555\u00a0010\u00a00100", "<phone>"),
    ("+1 (555) 123-4567", "<phone>"),
    ("+1-555-123-4567", "<phone>"),
    ("555.123.4567", "<phone>"),
    ("1 800 555 1234", "<phone>"),
    ("call 07700 900123", "call <phone>"),
    ("appelle-moi au 06 12 34 56 78 stp", "appelle-moi au <phone> stp"),
    ("mon portable: 06.12.34.56.78", "mon portable: <phone>"),
    ("+33 (0)6 12 34 56 78", "<phone>"),
    ("ruf mich an: 0171 2345678", "ruf mich an: <phone>"),
    ("Handy 0171/2345678", "Handy <phone>"),
    ("Tel. 030 12345678", "Tel. <phone>"),
    ("+49 (0) 171 2345678", "<phone>"),
    ("0049 171 2345678", "<phone>"),
    ("+4917112345678", "<phone>"),
    ("tel:+4930123456", "tel:<phone>"),
    ("chiamami al 333 123 4567", "chiamami al <phone>"),
    ("llámame al 612 34 56 78", "llámame al <phone>"),
    ("+34 612 34 56 78", "<phone>"),
    ("mijn nummer is 06 12345678", "mijn nummer is <phone>"),
    ("bel me op 06-12345678", "bel me op <phone>"),
    ("+31 6 12345678", "<phone>"),
    ("ligue +351 912 345 678", "ligue <phone>"),
    ("me liga no 11 91234-5678", "me liga no <phone>"),
    ("+55 11 91234-5678", "<phone>"),
    ("beni ara 0532 123 45 67", "beni ara <phone>"),
    ("мой номер +7 916 123-45-67", "мой номер <phone>"),
    ("звони 8 916 123-45-67", "звони <phone>"),
    ("mój numer 512 345 678", "mój numer <phone>"),
    ("+380 67 123 4567", "<phone>"),
    ("मेरा नंबर +91 98765 43210", "मेरा नंबर <phone>"),
    ("tel: 98765 43210", "tel: <phone>"),
    ("电话 13800138000", "电话 <phone>"),
    ("+86 138 0013 8000", "<phone>"),
    ("電話は090-1234-5678です", "電話は<phone>です"),
    ("＋８１ ９０－１２３４－５６７８", "<phone>"),
    ("رقمي +٩٧١ ٥٠ ١٢٣ ٤٥٦٧", "رقمي <phone>"),
    ("โทร0812345678ครับ", "โทร<phone>ครับ"),
    ("0612345678 0698765432", "<phone> <phone>"),
    ("13.06.2019 0612345678", "13.06.2019 <phone>"),
    # links, with and without a scheme; profile links
    ("see https://example.org/x?y=1.", "see <url>."),
    ("www.example.com/path, then", "<url>, then"),
    ("both: bob@example.org and https://t.me/x", "both: <email> and <url>"),
    ("look at drive.google.com/file/d/1AbC/view", "look at <url>"),
    ("example.com/x", "<url>"),
    ("t.me/joinchat/AAAA", "<url>"),
    ("wa.me/491712345678", "<url>"),
    ("my insta is instagram.com/ada_l", "my insta is <url>"),
    ("facebook.com/ada.lovelace?ref=x", "<url>"),
    ("vk.com/id12345", "<url>"),
    ("tiktok.com/@someone", "<url>"),
    ("youtu.be/dQw4w9WgXcQ", "<url>"),
    ("linkedin.com/in/ada-lovelace", "<url>"),
    ("ссылка: пример.рф/путь", "ссылка: <url>"),
    ("hier: https://docs.google.com/document/d/abc/edit?usp=sharing", "hier: <url>"),
    ("https://en.wikipedia.org/wiki/Foo_(bar)", "<url>"),
    ("[link](https://x.com/a)", "[link](<url>)"),
    ("看这个t.me/abc，好吗", "看这个<url>，好吗"),
    ("go to spiegel.de", "go to <url>"),
    ("check docs.google.com", "check <url>"),
    ("bbc.co.uk has it", "<url> has it"),
    ("Google.com is down", "<url> is down"),
    ("example.com:8443", "<url>"),
    # emails
    ("mail me at ada.lovelace@example.com ok", "mail me at <email> ok"),
    ("mail: a.b-c+d@sub.example.co.uk", "mail: <email>"),
    ("邮箱ada@example.com谢谢", "邮箱<email>谢谢"),
    # IBANs (mod 97), with and without spaces, any case
    ("IBAN DE89 3704 0044 0532 0130 00 danke", "IBAN <iban> danke"),
    ("DE89370400440532013000", "<iban>"),
    ("FR14 2004 1010 0505 0001 3M02 606", "<iban>"),
    ("GB82 WEST 1234 5698 7654 32.", "<iban>."),
    ("pay to de89 3704 0044 0532 0130 00 pls", "pay to <iban> pls"),
    ("PL61 1090 1014 0000 0712 1981 2874", "<iban>"),
    ("NL91ABNA0417164300", "<iban>"),
    ("CH93 0076 2011 6238 5295 7", "<iban>"),
    # card numbers (Luhn)
    ("card 4111 1111 1111 1111 thanks", "card <card> thanks"),
    ("card 4111-1111-1111-1111", "card <card>"),
    ("amex 3782 822463 10005", "amex <card>"),
]

# What must stay as written: times, dates, prices, scores, years, ages, rooms, distances, words with dots.
KEPT = [
    "see you at 21:43 😂",
    "born 13.06.2018, moved 2018-06-13",
    "I have 3 cats and 12 dogs",
    "the year 2019 was good",
    "score 120 to 98",
    "order 1234 5678",  # too short for a phone or card
    "4111 1111 1111 1112",  # fails the Luhn check: not a card, and grouped like one, so not a phone
    "DE89 3704 0044 0532 0130 01",  # fails mod 97: not an IBAN, and kept whole
    "café ça va ✨",
    "from 10.30-12.45",
    "12.06.-14.06.2019",
    "01.02.2019 - 03.02.2019",
    "1.1.2020-31.12.2020",
    "rendez-vous le 12/06/2024 à 14h30",
    "17.03.2024 в 19:00",
    "2024年3月17日 19:00",
    "12/28/19 21:43",
    "06/2019",
    "1990-2020",
    "1999 2000 2001",
    "dal 1990 al 2020",
    "2023-2024 season",
    "1 234 567 € de budget",
    "12.345.678 Einwohner",
    "120 000 000 people",
    "2 500 000 habitants",
    "ça coûte 12 500 €",
    "Das kostet 1.299,00 €",
    "cuesta 1.250.000 pesos",
    "it costs $1,299.99",
    "um 14.30 Uhr",
    "am 24.12. um 18 Uhr",
    "von 9-17 Uhr",
    "el partido quedó 2-1",
    "punteggio 21-19 21-17",
    "счёт 3:2",
    "tengo 34 años",
    "Zimmer 1204, 3. Stock",
    "room 1204",
    "12.5 km",
    "km 42.195",
    "height 1.85 m",
    "the 100m in 9.58",
    "coords 52.5200, 13.4050",
    "192.168.1.1",
    "192.168.100.200",
    "version 10.15.7",
    "pi is 3.14159265358",
    "0.123456789",
    "ISBN 978-3-16-148410-0",
    "lotto 4 8 15 16 23 42",
    "15 16 23 42 08 11",
    "100 200 300",
    "1 2 3 4 5 6 7 8 9 10",
    "my id 1672654272",  # ten digits in one block and no phone word: a timestamp or an id
    "tracking 1Z999AA10123456784",
    "order #123-456-789",
    "ok.so what now",
    "I'm home.Be there soon",
    "love.you",
    "got.it",
    "this.is nice",
    "run main.py",
    "file backup.zip",
    "the file is report.pdf",
    "node app.js",
    "wait...what",
    "e.g. this, i.e. that, a.m. or p.m.",
    "z.B. morgen, u.a. das",
    "St.Petersburg",
    "ok.google",
    "+20%",
    "user@localhost",
    "@ada_l on insta",
]


def test_the_table_is_large_and_covers_both_sides():
    assert len(MASKED) + len(KEPT) >= 60
    assert len(MASKED) >= 30 and len(KEPT) >= 30


@pytest.mark.parametrize("text, expected", MASKED)
def test_identifiers_become_placeholders(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_text_is_left_alone(text):
    assert scrub(text) == text


def test_scrubbing_twice_changes_nothing_more():
    for _, expected in MASKED:
        assert scrub(expected) == expected


def test_kinds_are_counted():
    text = "ring +49 171 2345678 or ada@example.com, t.me/ada, DE89 3704 0044 0532 0130 00, 4111 1111 1111 1111"
    scrubbed, kinds = scrub_counted(text)
    assert scrubbed == "ring <phone> or <email>, <url>, <iban>, <card>"
    assert kinds == ["phone", "email", "url", "iban", "card"]
    assert scrub_counted("nothing here") == ("nothing here", [])


@pytest.mark.parametrize(
    "unit",
    ["a.", "ab.cd+", "a@", "1 ", "12 ", "12-34.56/78(", "+1", "AB12 ", "http://", "0612345678.so "],
)
def test_long_adversarial_messages_scrub(unit):
    """60,000 characters of one repeated pattern; `benchmarks/bench_import.py` reports how fast."""
    text = (unit * (60_000 // len(unit) + 1))[:60_000] + " @ 123"
    scrubbed = scrub(text)
    assert scrubbed.endswith(" @ 123") and scrub(scrubbed) == scrubbed
