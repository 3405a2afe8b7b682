"""The compiled catalogues are in step with their sources, and every contract message has
its Spanish text."""
import io
import os

from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from oml_server import messages

TRANSLATIONS = os.path.join(os.path.dirname(messages.__file__), "translations")


def _catalog(lang):
    with open(os.path.join(TRANSLATIONS, lang, "LC_MESSAGES", "messages.po"), "rb") as f:
        return read_po(f)


def test_compiled_catalogues_match_their_sources():
    for lang in ("es", "en"):
        with open(os.path.join(TRANSLATIONS, lang, "LC_MESSAGES", "messages.mo"), "rb") as f:
            compiled = read_mo(f)
        source = _catalog(lang)
        assert {m.id: m.string for m in compiled if m.id} == \
            {m.id: m.string for m in source if m.id and m.string}, \
            f"run `make translations`: {lang} .mo is stale"


def test_every_translatable_message_has_spanish():
    spanish = {m.id for m in _catalog("es") if m.id and m.string}
    lazy = [v for v in vars(messages).values() if type(v).__name__ == "LazyString"]
    assert lazy
    missing = [v._args[0] for v in lazy if v._args[0] not in spanish]
    assert missing == []
