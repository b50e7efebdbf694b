"""The app's own words that exports file under a person's name, in the languages exports come in.

WhatsApp writes placeholders and notices into the chat as if someone had said them: "image omitted",
"This message was deleted", "Missed voice call", "null" (a view-once photo in Android exports), the
encryption notice that iOS files under the other person, "Your security code with Bob changed", the
disappearing-messages timer, and "<This message was edited>" appended to a message. All of them are written
in the phone's language. This module is the one table of those phrases: one `Language` entry per language,
so adding a language is adding one entry.

How the table is used (`training/importers/whatsapp.py`):
- `media`, `deleted`, `calls`, `app`: a whole message body (compared case-insensitively, direction marks
  removed, a final period optional, and for media also inside `<...>` as old iOS versions wrote them);
- `documents`: the end of a body ("Report.pdf • 3 pages document omitted");
- `edited`: the marker appended to an edited message, `<...>` around it; stripped, the message kept;
- `notices`: app lines as whole sentences (regular expressions, matched at the start of a short body), safe to
  apply to any body, marked or not: nobody says "Your security code with Bob changed." in their own words;
- `topics`: words that only name what an app line is about ("disappearing messages"); applied only to lines
  the export already marks as the app's (iOS bodies starting with U+200E), to count them under a reason;
- `attached`, `location`: how Android writes "IMG-….jpg (file attached)" and a shared location.

Sources: real exports in public parsers' test data (starkdmi/whats_json: English, German, French, Spanish,
Italian, European Portuguese, Dutch, Russian, Ukrainian, Czech, Indonesian, Japanese, Hindi, Thai, Vietnamese;
iOS and Android), and for Turkish, Polish, Brazilian Portuguese, missed calls and edit markers outside those
files, the tables of other open-source WhatsApp parsers. Phrases not seen in a real export are ones no person
would type as a whole message, so a wrong one matches nothing rather than hiding speech.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# reasons in the import report
DELETED = "deleted"
NULL = "app line: null placeholder"
WAITING = "app line: waiting for this message"
VIEW_ONCE = "app line: view once"
ENCRYPTION = "app line: encryption notice"
SECURITY_CODE = "app line: security code changed"
DISAPPEARING = "app line: disappearing messages"

_NAME = ".{1,80}?"  # a contact's name inside a notice


@dataclass(frozen=True)
class Language:
    media: dict[str, str] = field(default_factory=dict)  # whole-body placeholder -> corpus kind
    documents: tuple[str, ...] = ()  # a body ending in one of these is a document ("x.pdf • 2 pages …")
    calls: tuple[str, ...] = ()  # missed calls: kept as kind "call" with no text
    deleted: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()  # the marker without its angle brackets
    app: dict[str, str] = field(default_factory=dict)  # other whole-body app lines -> reason
    notices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # reason -> sentence patterns
    topics: dict[str, tuple[str, ...]] = field(default_factory=dict)  # reason -> words (marked lines only)
    attached: tuple[str, ...] = ()  # "(file attached)"
    location: tuple[str, ...] = ()  # "location: https://…"


LANGUAGES: dict[str, Language] = {
    "en": Language(
        media={"<Media omitted>": "other", "<Multimedia omitted>": "other", "image omitted": "photo",
               "video omitted": "video", "audio omitted": "audio", "sticker omitted": "sticker", "GIF omitted": "gif",
               "document omitted": "file", "Contact card omitted": "contact", "live location shared": "location"},
        documents=("document omitted",),
        calls=("Missed voice call", "Missed video call", "Missed group voice call", "Missed group video call"),
        deleted=("This message was deleted", "You deleted this message"),
        edited=("This message was edited",),
        app={"Waiting for this message": WAITING, "Waiting for this message. This may take a while": WAITING,
             "You received a view once message. For added privacy, you can only open it on your phone": VIEW_ONCE},
        notices={
            ENCRYPTION: (r"Messages and calls are (?:now )?end-to-end encrypted\b",
                         r"Messages (?:to this (?:chat|group) )?(?:and calls )?are now secured with end-to-end encryption\b",
                         r"Messages you send to this (?:chat|group) and calls are (?:now )?secured with end-to-end encryption\b"),
            SECURITY_CODE: (rf"Your security code with {_NAME} changed\.", rf"{_NAME}'s security code changed\."),
            DISAPPEARING: (rf"(?!I ){_NAME} turned (?:on|off) disappearing messages\.",
                           rf"(?!I ){_NAME} (?:updated|changed) the message timer\.",
                           r"Disappearing messages were turned (?:on|off)\b", r"New messages will disappear from this chat\b"),
        },
        topics={DISAPPEARING: ("disappearing messages", "message timer"), SECURITY_CODE: ("security code",),
                ENCRYPTION: ("end-to-end encrypt",)},
        attached=("file attached",), location=("location",),
    ),
    "de": Language(
        media={"<Medien ausgeschlossen>": "other", "<Medien weggelassen>": "other", "Bild weggelassen": "photo",
               "Video weggelassen": "video", "Audio weggelassen": "audio", "Sticker weggelassen": "sticker",
               "GIF weggelassen": "gif", "Dokument weggelassen": "file", "Kontaktkarte ausgelassen": "contact",
               "Kontaktkarte weggelassen": "contact"},
        documents=("Dokument weggelassen",),
        calls=("Verpasster Sprachanruf", "Verpasster Videoanruf"),
        deleted=("Diese Nachricht wurde gelöscht", "Du hast diese Nachricht gelöscht"),
        edited=("Diese Nachricht wurde bearbeitet",),
        notices={ENCRYPTION: (r"Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt\b",),
                 SECURITY_CODE: (rf"Deine Sicherheitsnummer für {_NAME} hat sich geändert\.",)},
        topics={DISAPPEARING: ("selbstlöschende nachrichten",), SECURITY_CODE: ("sicherheitsnummer",)},
        attached=("Datei angehängt",), location=("Standort",),
    ),
    "fr": Language(
        media={"<médias omis>": "other", "image absente": "photo", "vidéo absente": "video", "audio omis": "audio",
               "sticker omis": "sticker", "autocollant omis": "sticker", "GIF retiré": "gif",
               "document manquant": "file", "document omis": "file", "Fiche contact manquante": "contact"},
        documents=("document manquant", "document omis"),
        calls=("Appel vocal manqué", "Appel vidéo manqué"),
        deleted=("Ce message a été supprimé", "Vous avez supprimé ce message"),
        edited=("Ce message a été modifié",),
        notices={ENCRYPTION: (r"Les messages et les appels sont chiffrés de bout en bout\b",),
                 SECURITY_CODE: (rf"Votre code de sécurité avec {_NAME} a changé\.",)},
        topics={DISAPPEARING: ("messages éphémères",), SECURITY_CODE: ("code de sécurité",)},
        attached=("fichier joint",), location=("Localisation",),
    ),
    "es": Language(
        media={"<Multimedia omitido>": "other", "imagen omitida": "photo", "video omitido": "video",
               "audio omitido": "audio", "sticker omitido": "sticker", "GIF omitido": "gif",
               "documento omitido": "file", "Tarjeta de contacto omitida": "contact"},
        documents=("documento omitido",),
        calls=("Llamada perdida", "Llamada de voz perdida", "Videollamada perdida"),
        deleted=("Se eliminó este mensaje", "Eliminaste este mensaje", "Este mensaje fue eliminado"),
        edited=("Se editó este mensaje", "Este mensaje fue editado"),
        notices={ENCRYPTION: (r"Los mensajes y las llamadas están cifrados de extremo a extremo\b",),
                 SECURITY_CODE: (rf"Cambió tu código de seguridad con {_NAME}\.", rf"Tu código de seguridad con {_NAME} cambió\.")},
        topics={DISAPPEARING: ("mensajes temporales",), SECURITY_CODE: ("código de seguridad",)},
        attached=("archivo adjunto",), location=("Ubicación",),
    ),
    "it": Language(
        media={"<Media omessi>": "other", "immagine omessa": "photo", "video omesso": "video", "audio omesso": "audio",
               "sticker omesso": "sticker", "sticker non incluso": "sticker", "GIF esclusa": "gif",
               "documento omesso": "file", "Scheda contatto omessa": "contact"},
        documents=("documento omesso",),
        calls=("Chiamata vocale persa", "Videochiamata persa"),
        deleted=("Questo messaggio è stato eliminato", "Hai eliminato questo messaggio"),
        edited=("Questo messaggio è stato modificato",),
        notices={ENCRYPTION: (r"I messaggi e le chiamate sono crittografati end-to-end\b",),
                 SECURITY_CODE: (rf"Il tuo codice di sicurezza con {_NAME} è cambiato\.",)},
        topics={DISAPPEARING: ("messaggi effimeri",), SECURITY_CODE: ("codice di sicurezza",)},
        attached=("file allegato",), location=("Posizione",),
    ),
    "pt": Language(  # European (pt-PT, from a real export) and Brazilian (pt-BR) wording
        media={"<Mídia oculta>": "other", "<Arquivo de mídia oculto>": "other", "imagem não revelada": "photo",
               "imagem ocultada": "photo", "vídeo não revelado": "video", "vídeo omitido": "video",
               "ficheiro de áudio não revelado": "audio", "áudio ocultado": "audio", "sticker não revelado": "sticker",
               "figurinha omitida": "sticker", "GIF não revelada": "gif", "documento não revelado": "file",
               "Contacto não revelado": "contact"},
        documents=("documento não revelado",),
        calls=("Chamada de voz perdida", "Chamada de vídeo perdida"),
        deleted=("Esta mensagem foi apagada", "Essa mensagem foi apagada", "Apagou esta mensagem", "Mensagem apagada",
                 "Você apagou esta mensagem"),
        edited=("Mensagem editada", "Esta mensagem foi editada"),
        notices={ENCRYPTION: (r"As mensagens e chamadas são encriptadas ponto a ponto\b",
                              r"As mensagens e (?:as )?(?:chamadas|ligações) são protegidas com a criptografia de ponta a ponta\b"),
                 SECURITY_CODE: (rf"O seu código de segurança partilhado com {_NAME} mudou\.",
                                 rf"Seu código de segurança com {_NAME} mudou\.")},
        topics={DISAPPEARING: ("mensagens temporárias",), SECURITY_CODE: ("código de segurança",)},
        attached=("arquivo anexado",), location=("Localização",),
    ),
    "nl": Language(
        media={"<Media weggelaten>": "other", "afbeelding weggelaten": "photo", "video weggelaten": "video",
               "audio weggelaten": "audio", "sticker weggelaten": "sticker"},
        calls=("Gemiste spraakoproep", "Gemiste video-oproep"),
        deleted=("Dit bericht is verwijderd", "U hebt dit bericht verwijderd", "Je hebt dit bericht verwijderd"),
        edited=("Dit bericht is bewerkt",),
        notices={ENCRYPTION: (r"Berichten en oproepen worden end-to-end versleuteld\b",)},
        topics={DISAPPEARING: ("verdwijnende berichten",), SECURITY_CODE: ("beveiligingscode",)},
        attached=("bestand bijgevoegd",), location=("locatie",),
    ),
    "ru": Language(
        media={"<Без медиафайлов>": "other", "изображение отсутствует": "photo", "видео отсутствует": "video",
               "аудиофайл отсутствует": "audio", "стикер не добавлен": "sticker", "GIF отсутствует": "gif",
               "документ отсутствует": "file", "Карточка контакта отсутствует": "contact"},
        documents=("документ отсутствует",),
        calls=("Пропущенный аудиозвонок", "Пропущенный видеозвонок"),
        deleted=("Данное сообщение удалено", "Вы удалили данное сообщение"),
        edited=("Это сообщение изменено",),
        notices={ENCRYPTION: (r"Сообщения и звонки защищены сквозным шифрованием",),
                 SECURITY_CODE: (rf"Ваш код безопасности с контактом {_NAME} изменился\.",)},
        topics={DISAPPEARING: ("исчезающие сообщения",), SECURITY_CODE: ("код безопасности",)},
        attached=("файл добавлен",), location=("местоположение",),
    ),
    "uk": Language(
        media={"зображення відсутнє": "photo", "відео відсутнє": "video", "аудіо відсутнє": "audio",
               "Наклейку не додано": "sticker", "GIF-анімацію пропущено": "gif", "документ пропущено": "file",
               "Картка контакту відсутня": "contact"},
        documents=("документ пропущено",),
        deleted=("Це повідомлення було видалено", "Ви видалили це повідомлення"),
        notices={ENCRYPTION: (r"Повідомлення й дзвінки захищено наскрізним шифруванням",),
                 SECURITY_CODE: (rf"Код безпеки з контактом {_NAME} змінився\.",)},
        topics={SECURITY_CODE: ("код безпеки",)},
        location=("Розташування",),
    ),
    "tr": Language(
        media={"<Medya dahil edilmedi>": "other", "görüntü dahil edilmedi": "photo", "video dahil edilmedi": "video",
               "ses dahil edilmedi": "audio", "Çıkartma dahil edilmedi": "sticker", "GIF dahil edilmedi": "gif",
               "belge dahil edilmedi": "file", "kişi kartı dahil edilmedi": "contact"},
        documents=("belge dahil edilmedi",),
        calls=("Cevapsız sesli arama", "Cevapsız görüntülü arama"),
        deleted=("Bu mesaj silindi", "Bu mesajı sildiniz"),
        edited=("Bu mesaj düzenlendi",),
        notices={ENCRYPTION: (r"Mesajlar ve aramalar uçtan uca şifrelidir",)},
        attached=("dosya ekli",), location=("konum",),
    ),
    "pl": Language(
        media={"<Pominięto multimedia>": "other"},
        deleted=("Ta wiadomość została usunięta", "Usunięto tę wiadomość"),
        edited=("Ta wiadomość została zmieniona",),
        notices={ENCRYPTION: (r"Wiadomości i połączenia są szyfrowane end-to-end\b",)},
        attached=("plik załączony", "załączony plik"),
    ),
    "cs": Language(
        media={"<Média vynechány>": "other", "obrázek vynechán": "photo", "video vynecháno": "video",
               "zvukový soubor vynechán": "audio", "nálepka vynechána": "sticker", "GIF vynechán": "gif",
               "dokument vynechán": "file", "Vizitka vynechána": "contact"},
        documents=("dokument vynechán",),
        calls=("Zmeškaný hovor",),
        deleted=("Tato zpráva byla odstraněna", "Tuto zprávu jste odstranil/a", "Tato zpráva byla smazána",
                 "Tuto zprávu jste smazal/a"),
        notices={ENCRYPTION: (r"Zprávy a hovory jsou (?:zabezpečeny|opatřeny) koncovým šifrováním",),
                 SECURITY_CODE: (rf"Bezpečnostní kód mezi vámi a {_NAME} byl změněn\.",)},
        topics={SECURITY_CODE: ("bezpečnostní kód",)},
        attached=("soubor byl přiložen",), location=("poloha",),
    ),
    "id": Language(
        media={"gambar tidak disertakan": "photo", "video tidak disertakan": "video", "audio tidak disertakan": "audio",
               "stiker tidak disertakan": "sticker", "GIF tidak disertakan": "gif", "dokumen tidak disertakan": "file",
               "Kartu kontak tidak disertakan": "contact"},
        documents=("dokumen tidak disertakan",),
        deleted=("Pesan ini dihapus", "Anda menghapus pesan ini"),
        notices={ENCRYPTION: (r"Pesan dan panggilan terenkripsi secara end-to-end\b",),
                 SECURITY_CODE: (rf"Kode keamanan Anda dengan {_NAME} telah berubah\.",)},
        topics={SECURITY_CODE: ("kode keamanan",)},
        location=("Lokasi",),
    ),
    "ja": Language(
        media={"画像は含まれていません": "photo", "ビデオは含まれていません": "video", "音声は含まれていません": "audio",
               "スタンプは含まれていません": "sticker", "GIFは含まれていません": "gif",
               "ドキュメントは含まれていません": "file", "連絡先カードを省略": "contact"},
        documents=("ドキュメントは含まれていません",),
        deleted=("このメッセージは削除されました", "このメッセージを削除しました"),
        notices={ENCRYPTION: (r"メッセージと通話はエンドツーエンド暗号化されています",),
                 SECURITY_CODE: (rf"{_NAME}とのセキュリティコードが変更されました",)},
        topics={SECURITY_CODE: ("セキュリティコード",)},
        location=("位置情報",),
    ),
    "hi": Language(
        media={"फ़ोटो हटाई गई": "photo", "वीडियो छोड़ा गया": "video", "ऑडियो हटाई गयी": "audio",
               "स्टिकर छोड़ा गया": "sticker", "GIF छोड़ा गया": "gif", "डॉक्यूमेंट छोड़ा गया": "file",
               "कॉन्टैक्ट कार्ड छोड़ा गया": "contact"},
        documents=("डॉक्यूमेंट छोड़ा गया",),
        deleted=("यह मैसेज डिलीट कर दिया गया है", "आपने यह मैसेज डिलीट किया"),
        notices={ENCRYPTION: (r"मैसेजेस और कॉल्स एंड-टू-एंड एन्क्रिप्टेड हैं",),
                 SECURITY_CODE: (rf"{_NAME} के लिए आपका सुरक्षा कोड बदल गया है",)},
        topics={SECURITY_CODE: ("सुरक्षा कोड",)},
        location=("लोकेशन",),
    ),
    "th": Language(
        media={"ไม่มีรูปภาพ": "photo", "วิดีโอถูกลบ": "video", "ไม่มีไฟล์เสียง": "audio", "ไม่มีสติกเกอร์": "sticker",
               "ละเว้น GIF": "gif", "ละเว้นเอกสาร": "file", "บัตรรายชื่อที่ละเว้น": "contact"},
        documents=("ละเว้นเอกสาร",),
        deleted=("ข้อความนี้ถูกลบแล้ว", "คุณได้ลบข้อความนี้"),
        notices={ENCRYPTION: (r"ข้อความและการโทรได้รับการเข้ารหัสจากต้นทางถึงปลายทาง",),
                 SECURITY_CODE: (rf"รหัสความปลอดภัยของคุณกับ {_NAME} มีการเปลี่ยนแปลง",)},
        topics={SECURITY_CODE: ("รหัสความปลอดภัย",)},
        location=("ตำแหน่งที่ตั้ง",),
    ),
    "vi": Language(
        media={"đã bỏ qua hình ảnh": "photo", "đã bỏ video": "video", "bỏ qua tệp âm thanh": "audio",
               "đã bỏ sticker": "sticker", "Đã bỏ qua ảnh GIF": "gif", "đã bỏ qua tài liệu": "file",
               "Bỏ qua thẻ liên lạc": "contact"},
        documents=("đã bỏ qua tài liệu",),
        deleted=("Tin nhắn này đã bị xóa", "Bạn đã xoá tin nhắn này"),
        notices={ENCRYPTION: (r"Tin nhắn và cuộc gọi được mã hóa đầu cuối",),
                 SECURITY_CODE: (rf"Mã bảo mật của bạn với {_NAME} đã thay đổi\.",)},
        topics={SECURITY_CODE: ("mã bảo mật",)},
        location=("Vị trí",),
    ),
    "fi": Language(location=("sijainti",)),
}

# Android exports write "null" where a view-once photo (and in some versions a deleted message) was.
NULL_BODY = "null"


# ---------------------------------------------------------------- lookups built once from the table


def _fold(phrase: str) -> str:
    return phrase.casefold()


def _without_stop(phrase: str) -> str:
    return phrase[:-1] if phrase.endswith((".", "。")) else phrase


MEDIA: dict[str, str] = {}  # folded placeholder (and "<placeholder>") -> kind
WHOLE: dict[str, tuple[str | None, str]] = {}  # folded whole body (no final stop) -> (kind, "") or (None, reason)
for _language in LANGUAGES.values():
    for _phrase, _kind in _language.media.items():
        _key = _fold(_phrase)
        MEDIA[_key] = _kind
        if not _key.startswith("<"):
            MEDIA[f"<{_key}>"] = _kind
    for _phrase in _language.calls:
        MEDIA[_fold(_phrase)] = "call"
WHOLE.update((key, (kind, "")) for key, kind in MEDIA.items())
for _language in LANGUAGES.values():
    WHOLE.update((_fold(phrase), (None, DELETED)) for phrase in _language.deleted)
    WHOLE.update((_fold(phrase), (None, reason)) for phrase, reason in _language.app.items())
WHOLE[NULL_BODY] = (None, NULL)

DOCUMENT_SUFFIXES = tuple({_fold(s) for language in LANGUAGES.values() for s in language.documents})
ATTACHED_WORDS = tuple(dict.fromkeys(w for language in LANGUAGES.values() for w in language.attached))
LOCATION_WORDS = tuple(dict.fromkeys(w for language in LANGUAGES.values() for w in language.location))
EDITED = re.compile(
    r"\s*<(?:" + "|".join(re.escape(m) for language in LANGUAGES.values() for m in language.edited) + r")\.?>$",
    re.IGNORECASE,
)
# Last words of every whole-body phrase (folded): a body whose own last word is one of them gets the slower look.
LAST_WORDS = frozenset(_without_stop(key).rsplit(" ", 1)[-1].strip("<>") for key in WHOLE)

_NOTICES: list[tuple[str, re.Pattern]] = []
_NOTICE_PREFIXES: set[str] = set()  # the literal start of each notice, folded
_NAME_FIRST_WORDS: set[str] = set()  # the topic words of the notices that start with a name
for _language in LANGUAGES.values():
    for _reason, _patterns in _language.notices.items():
        for _pattern in _patterns:
            _NOTICES.append((_reason, re.compile(_pattern, re.IGNORECASE)))
            _prefix = re.split(r"[\\(.\[?*+{|^$]", _pattern, maxsplit=1)[0]
            if len(_prefix) >= 3:
                _NOTICE_PREFIXES.add(_fold(_prefix))
            else:
                _NAME_FIRST_WORDS.update(_language.topics.get(_reason, ()))
_TOPICS = [(reason, _fold(word)) for language in LANGUAGES.values() for reason, words in language.topics.items()
           for word in words]
# A body may be a notice when it starts like one, or holds the topic of a notice that starts with a name (those
# words stand mid-sentence, in lowercase): two cheap tests that rule out nearly all speech.
NOTICE_PREFIXES = tuple(sorted(_NOTICE_PREFIXES))
_PREFIX_HEADS = frozenset(prefix[:4] for prefix in NOTICE_PREFIXES)
NAME_FIRST_WORDS = tuple(sorted(_NAME_FIRST_WORDS))
NOTICE_MIN_CHARS, NOTICE_MAX_CHARS = 20, 400  # app notices are a sentence or three


def whole_body(body: str) -> tuple[str | None, str] | None:
    """(kind, "") when `body` (direction marks already removed) is a media placeholder or a missed call;
    (None, reason) when it is a deletion placeholder or another app line; None when it is neither."""
    key = _without_stop(body.strip()).casefold()
    return WHOLE.get(key)


def notice(body: str) -> str | None:
    """The reason when `body` is one of the app's notices as a whole sentence, else None. Cheap for speech."""
    if not NOTICE_MIN_CHARS <= len(body) <= NOTICE_MAX_CHARS:
        return None
    if not (body[:4].casefold() in _PREFIX_HEADS and body[:64].casefold().startswith(NOTICE_PREFIXES)):
        for word in NAME_FIRST_WORDS:  # a loop: faster here than any() or a regular expression
            if word in body:
                break
        else:
            return None
    for reason, pattern in _NOTICES:
        if pattern.match(body):
            return reason
    return None


def topic(body: str) -> str | None:
    """What an app line already known to be one is about (a notice, or words naming its subject)."""
    reason = notice(body)
    if reason:
        return reason
    folded = body.casefold()
    for reason, word in _TOPICS:
        if word in folded:
            return reason
    return None


def strip_edited(body: str) -> str:
    """The message without an appended "<This message was edited>" (in any language of the table)."""
    return EDITED.sub("", body) if body.endswith(">") else body
