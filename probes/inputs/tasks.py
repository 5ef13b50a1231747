"""Short-answer tasks for layer-wise exit accuracy (Fan et al. 2024, AdaInfer; docs/methods/early-exit.md):
sentiment (2 classes), topic (4 classes) and multiple-choice knowledge questions (A-D).

Sources: the tasks authored in ``data/tasks/`` (``sentiment.csv`` and ``topic.csv`` with columns
``item,lang,text,label``; ``mcqa.csv`` with ``item,lang,question,A,B,C,D,answer``), or, for users
with a hub, SST-2, AG News and MMLU through the ``datasets`` library, mapped to the same columns.

Answers are single tokens, so that a layer's top-1 token either is the answer or is not
(AdaInfer's label). The answer words are the same in every language and are single tokens in
both embedded tokenizers (Gemma 3 and SmolLM2) when they follow ``": "``: the English label words
`` positive``/`` negative`` and `` world``/`` sports``/`` business``/`` science`` for the
classifiers, and the letters `` A``..`` D`` for mcqa. Instructions and field names are written
in the prompt's language; the instruction names the English label words.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pandas as pd

from probes.backend.errors import DataFormatError, TokenizerVocabularyError
from probes.backend.languages import get_language
from probes.inputs import DATA_DIR

TASKS_DIR = DATA_DIR / "tasks"
MCQA_LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Template:
    """Per-language wording: the instruction line and the names of the input and answer fields."""

    instruction: str
    input_field: str
    answer_field: str


@dataclass(frozen=True)
class TaskSpec:
    """A task: its gold labels, the answer word of each label, and its prompt templates.

    ``answers`` maps each label to the continuation that answers it, with its leading space
    (e.g. ``" positive"``); it must be one token of the model's tokenizer.
    """

    name: str
    kind: str  # "classify" (columns text, label) or "mcqa" (question, A-D, answer)
    answers: dict[str, str]
    templates: dict[str, Template]
    file: str = ""

    @property
    def labels(self) -> list[str]:
        return list(self.answers)

    def template(self, lang: str) -> Template:
        get_language(lang)
        if lang not in self.templates:
            raise DataFormatError(
                f"task {self.name!r} has no prompt template for {lang!r}; it has {', '.join(self.templates)} "
                "(add one to probes/inputs/tasks.py)"
            )
        return self.templates[lang]

    def template_sha(self, lang: str) -> str:
        """Fingerprint of the prompt format, stored with results so that a changed template is a new run."""
        t = self.template(lang)
        text = "\x1f".join([self.kind, t.instruction, t.input_field, t.answer_field, *self.answers.values()])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _mcqa_templates() -> dict[str, Template]:
    instructions = {
        "en": ("Answer each multiple-choice question with the letter of the correct option.", "Question"),
        "fr": ("Répondez à chaque question à choix multiples par la lettre de la bonne option.", "Question"),
        "es": ("Responde a cada pregunta de opción múltiple con la letra de la opción correcta.", "Pregunta"),
        "de": ("Beantworte jede Multiple-Choice-Frage mit dem Buchstaben der richtigen Option.", "Frage"),
        "ru": ("Ответь на каждый вопрос буквой правильного варианта.", "Вопрос"),
        "zh": ("用正确选项的字母回答每道选择题。", "问题"),
        "ta": ("ஒவ்வொரு பல்தேர்வு கேள்விக்கும் சரியான விடையின் எழுத்தைக் கொண்டு பதிலளியுங்கள்.", "கேள்வி"),
        "ar": ("أجب عن كل سؤال اختيار من متعدد بحرف الخيار الصحيح.", "السؤال"),
        "sw": ("Jibu kila swali la kuchagua kwa herufi ya chaguo sahihi.", "Swali"),
        "el": ("Απάντησε σε κάθε ερώτηση πολλαπλής επιλογής με το γράμμα της σωστής επιλογής.", "Ερώτηση"),
        "th": ("ตอบคำถามแบบเลือกตอบแต่ละข้อด้วยตัวอักษรของตัวเลือกที่ถูกต้อง", "คำถาม"),
        "bn": ("প্রতিটি বহুনির্বাচনী প্রশ্নের উত্তর সঠিক বিকল্পের অক্ষর দিয়ে দিন।", "প্রশ্ন"),
        "mr": ("प्रत्येक बहुपर्यायी प्रश्नाचे उत्तर योग्य पर्यायाच्या अक्षराने द्या.", "प्रश्न"),
        "ml": ("ഓരോ ബഹുവികല്പ ചോദ്യത്തിനും ശരിയായ ഉത്തരത്തിന്റെ അക്ഷരം ഉപയോഗിച്ച് മറുപടി നൽകുക.", "ചോദ്യം"),
        "te": ("ప్రతి బహుళైచ్ఛిక ప్రశ్నకు సరైన ఎంపిక యొక్క అక్షరంతో సమాధానం ఇవ్వండి.", "ప్రశ్న"),
        "it": ("Rispondi a ogni domanda a scelta multipla con la lettera dell'opzione corretta.", "Domanda"),
        "pt": ("Responda a cada pergunta de múltipla escolha com a letra da opção correta.", "Pergunta"),
        "nl": ("Beantwoord elke meerkeuzevraag met de letter van de juiste optie.", "Vraag"),
        "uk": ("Дай відповідь на кожне запитання буквою правильного варіанта.", "Запитання"),
        "tr": ("Her çoktan seçmeli soruyu doğru seçeneğin harfiyle yanıtla.", "Soru"),
        "vi": ("Trả lời mỗi câu hỏi trắc nghiệm bằng chữ cái của phương án đúng.", "Câu hỏi"),
        "id": ("Jawab setiap soal pilihan ganda dengan huruf pilihan yang benar.", "Soal"),
        "hi": ("हर बहुविकल्पीय प्रश्न का उत्तर सही विकल्प के अक्षर से दें।", "प्रश्न"),
        "ja": ("各選択問題に、正しい選択肢の文字で答えてください。", "問題"),
        "ko": ("각 객관식 문제에 정답 선택지의 알파벳으로 답하세요.", "문제"),
    }
    # the answer field is the language registry's word for "Answer"
    return {lang: Template(text, field, get_language(lang).answer) for lang, (text, field) in instructions.items()}


TASKS: dict[str, TaskSpec] = {
    "sentiment": TaskSpec(
        "sentiment",
        "classify",
        {"positive": " positive", "negative": " negative"},
        {
            "en": Template("Classify the sentiment of each review: positive or negative.", "Review", "Sentiment"),
            "fr": Template("Classez le sentiment de chaque avis : positive ou negative.", "Avis", "Sentiment"),
            "es": Template("Clasifica el sentimiento de cada reseña: positive o negative.", "Reseña", "Sentimiento"),
            "de": Template("Bestimme die Stimmung jeder Rezension: positive oder negative.", "Rezension", "Stimmung"),
            "ru": Template("Определи тональность каждого отзыва: positive или negative.", "Отзыв", "Тональность"),
            "zh": Template("判断每条评论的情感：positive 或 negative。", "评论", "情感"),
            "ta": Template("ஒவ்வொரு விமர்சனத்தின் உணர்வையும் வகைப்படுத்துங்கள்: positive அல்லது negative.", "விமர்சனம்", "உணர்வு"),
            "ar": Template("صنّف المشاعر في كل مراجعة: positive أو negative.", "المراجعة", "المشاعر"),
            "sw": Template("Ainisha hisia za kila maoni: positive au negative.", "Maoni", "Hisia"),
            "el": Template("Ταξινόμησε το συναίσθημα κάθε κριτικής: positive ή negative.", "Κριτική", "Συναίσθημα"),
            "th": Template("จำแนกความรู้สึกของแต่ละรีวิว: positive หรือ negative", "รีวิว", "ความรู้สึก"),
            "bn": Template("প্রতিটি রিভিউয়ের অনুভূতি শ্রেণিবদ্ধ করুন: positive অথবা negative।", "রিভিউ", "অনুভূতি"),
            "mr": Template("प्रत्येक परीक्षणाची भावना वर्गीकृत करा: positive किंवा negative.", "परीक्षण", "भावना"),
            "ml": Template("ഓരോ അവലോകനത്തിന്റെയും വികാരം തരംതിരിക്കുക: positive അല്ലെങ്കിൽ negative.", "അവലോകനം", "വികാരം"),
            "te": Template("ప్రతి సమీక్షలోని భావాన్ని వర్గీకరించండి: positive లేదా negative.", "సమీక్ష", "భావం"),
            "it": Template(
                "Classifica il sentimento di ogni recensione: positive o negative.", "Recensione", "Sentimento"
            ),
            "pt": Template(
                "Classifique o sentimento de cada avaliação: positive ou negative.", "Avaliação", "Sentimento"
            ),
            "nl": Template("Bepaal het sentiment van elke recensie: positive of negative.", "Recensie", "Sentiment"),
            "uk": Template("Визнач тональність кожного відгуку: positive або negative.", "Відгук", "Тональність"),
            "tr": Template("Her yorumun duygusunu sınıflandır: positive ya da negative.", "Yorum", "Duygu"),
            "vi": Template("Phân loại cảm xúc của mỗi bài đánh giá: positive hoặc negative.", "Đánh giá", "Cảm xúc"),
            "id": Template("Klasifikasikan sentimen setiap ulasan: positive atau negative.", "Ulasan", "Sentimen"),
            "hi": Template("हर समीक्षा की भावना वर्गीकृत करें: positive या negative।", "समीक्षा", "भावना"),
            "ja": Template("各レビューの感情を分類してください：positive または negative。", "レビュー", "感情"),
            "ko": Template("각 리뷰의 감정을 분류하세요: positive 또는 negative.", "리뷰", "감정"),
        },
        "sentiment.csv",
    ),
    "topic": TaskSpec(
        "topic",
        "classify",
        {"world": " world", "sports": " sports", "business": " business", "science": " science"},
        {
            "en": Template(
                "Classify the topic of each news article: world, sports, business or science.", "Article", "Topic"
            ),
            "fr": Template(
                "Classez le thème de chaque article : world, sports, business ou science.", "Article", "Thème"
            ),
            "es": Template("Clasifica el tema de cada noticia: world, sports, business o science.", "Noticia", "Tema"),
            "de": Template(
                "Bestimme das Thema jedes Artikels: world, sports, business oder science.", "Artikel", "Thema"
            ),
            "ru": Template("Определи тему каждой новости: world, sports, business или science.", "Новость", "Тема"),
            "zh": Template("判断每篇新闻的主题：world、sports、business 或 science。", "新闻", "主题"),
            "ta": Template(
                "ஒவ்வொரு செய்தியின் தலைப்பையும் வகைப்படுத்துங்கள்: world, sports, business அல்லது science.", "செய்தி", "தலைப்பு"
            ),
            "ar": Template("صنّف موضوع كل مقال إخباري: world أو sports أو business أو science.", "المقال", "الموضوع"),
            "sw": Template("Ainisha mada ya kila habari: world, sports, business au science.", "Habari", "Mada"),
            "el": Template("Ταξινόμησε το θέμα κάθε είδησης: world, sports, business ή science.", "Είδηση", "Θέμα"),
            "th": Template("จำแนกหัวข้อของแต่ละข่าว: world, sports, business หรือ science", "ข่าว", "หัวข้อ"),
            "bn": Template("প্রতিটি সংবাদের বিষয় শ্রেণিবদ্ধ করুন: world, sports, business অথবা science।", "সংবাদ", "বিষয়"),
            "mr": Template("प्रत्येक बातमीचा विषय वर्गीकृत करा: world, sports, business किंवा science.", "बातमी", "विषय"),
            "ml": Template(
                "ഓരോ വാർത്തയുടെയും വിഷയം തരംതിരിക്കുക: world, sports, business അല്ലെങ്കിൽ science.", "വാർത്ത", "വിഷയം"
            ),
            "te": Template("ప్రతి వార్త యొక్క అంశాన్ని వర్గీకరించండి: world, sports, business లేదా science.", "వార్త", "అంశం"),
            "it": Template(
                "Classifica l'argomento di ogni notizia: world, sports, business o science.", "Notizia", "Argomento"
            ),
            "pt": Template(
                "Classifique o tema de cada notícia: world, sports, business ou science.", "Notícia", "Tema"
            ),
            "nl": Template(
                "Bepaal het onderwerp van elk nieuwsbericht: world, sports, business of science.",
                "Bericht",
                "Onderwerp",
            ),
            "uk": Template("Визнач тему кожної новини: world, sports, business або science.", "Новина", "Тема"),
            "tr": Template("Her haberin konusunu sınıflandır: world, sports, business ya da science.", "Haber", "Konu"),
            "vi": Template(
                "Phân loại chủ đề của mỗi bản tin: world, sports, business hoặc science.", "Bản tin", "Chủ đề"
            ),
            "id": Template(
                "Klasifikasikan topik setiap berita: world, sports, business, atau science.", "Berita", "Topik"
            ),
            "hi": Template("हर समाचार का विषय वर्गीकृत करें: world, sports, business या science।", "समाचार", "विषय"),
            "ja": Template(
                "各ニュース記事のトピックを分類してください：world、sports、business または science。",
                "記事",
                "トピック",
            ),
            "ko": Template("각 뉴스 기사의 주제를 분류하세요: world, sports, business 또는 science.", "기사", "주제"),
        },
        "topic.csv",
    ),
    "mcqa": TaskSpec("mcqa", "mcqa", {letter: f" {letter}" for letter in MCQA_LETTERS}, _mcqa_templates(), "mcqa.csv"),
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise DataFormatError(f"unknown task {name!r}; pivotlens has {', '.join(TASKS)}")
    return TASKS[name]


def _columns(kind: str) -> list[str]:
    return (
        ["item", "lang", "text", "label"]
        if kind == "classify"
        else ["item", "lang", "question", *MCQA_LETTERS, "answer"]
    )


@dataclass
class TaskData:
    """Rows of one task in the common columns (``label`` holds the gold label for every kind).

    ``source`` names where they came from (a file or a hub id with its split); ``files`` are the
    local files hashed into a result's provenance.
    """

    spec: TaskSpec
    frame: pd.DataFrame
    source: str
    files: list[str] = field(default_factory=list)

    def rows(self, lang: str) -> pd.DataFrame:
        rows = self.frame[self.frame["lang"] == lang]
        if rows.empty:
            have = ", ".join(sorted(self.frame["lang"].unique()))
            raise DataFormatError(f"{self.source} has no {self.spec.name} items in {lang!r}; it has {have}")
        return rows


def validate(spec: TaskSpec, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns, labels and uniqueness; return the frame with ``item`` as text and ``label`` set."""
    needed = _columns(spec.kind)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{source}: missing columns {missing}; a {spec.name} file has columns {','.join(needed)}")
    frame = frame.copy()
    if spec.kind == "mcqa":
        frame["label"] = frame["answer"]
    frame["item"] = frame["item"].astype(str)
    for column in needed:
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            line = int(empty.to_numpy().nonzero()[0][0]) + 2  # header is line 1
            raise DataFormatError(f"{source}, line {line}: column {column!r} is empty")
    bad = ~frame["label"].isin(spec.labels)
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2
        raise DataFormatError(
            f"{source}, line {line}: label {frame['label'][bad].iloc[0]!r} is not one of {spec.labels}"
        )
    dup = frame.duplicated(["item", "lang"])
    if dup.any():
        line = int(dup.to_numpy().nonzero()[0][0]) + 2
        raise DataFormatError(
            f"{source}, line {line}: item {frame['item'][dup].iloc[0]!r} appears twice for one language"
        )
    return frame.reset_index(drop=True)


def load_task(name: str, path: str | Path | None = None) -> TaskData:
    """An authored task from ``data/tasks/<name>.csv`` (or ``path``)."""
    spec = get_task(name)
    file = Path(path) if path is not None else TASKS_DIR / spec.file
    if not file.is_file():
        raise DataFormatError(f"task file {file} does not exist; pass the path of a {spec.name} CSV")
    frame = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
    return TaskData(spec, validate(spec, frame, str(file)), str(file), [str(file)])


# ---- real data sets through `datasets` ---------------------------------------------------------


@dataclass(frozen=True)
class HubSource:
    """Where a real data set lives on the hub and how its columns map to ours."""

    dataset: str
    config: str | None
    split: str


HUB_SOURCES: dict[str, HubSource] = {
    "sentiment": HubSource("stanfordnlp/sst2", None, "validation"),  # the test split has no labels
    "topic": HubSource("fancyzhx/ag_news", None, "test"),
    "mcqa": HubSource("cais/mmlu", "all", "test"),
}
SST2_LABELS = ("negative", "positive")  # SST-2 label ids 0, 1
AG_NEWS_LABELS = ("world", "sports", "business", "science")  # AG News ids 0-3 (World, Sports, Business, Sci/Tech)
_LOCAL_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def _label_names(values: pd.Series, names: Sequence[str], column: str, source: str) -> list[str]:
    """Integer label ids (or the names themselves) -> names, with a clear error for anything else."""
    out = []
    for row, raw in enumerate(values.tolist()):
        if isinstance(raw, str) and raw in names:
            out.append(raw)
            continue
        value = int(raw) if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() else raw
        if not isinstance(value, int) or not 0 <= value < len(names):
            raise DataFormatError(
                f"{source}, row {row}: {column}={value!r} is not a label id 0..{len(names) - 1} "
                "(an unlabelled test split has -1; use a split with labels)"
            )
        out.append(names[value])
    return out


def hub_frame(name: str, hub: pd.DataFrame, source: str) -> pd.DataFrame:
    """Map SST-2, AG News or MMLU rows (hub column layout) to the task's columns (language ``en``)."""
    if name == "sentiment":
        text = "sentence" if "sentence" in hub.columns else "text"
        items = hub["idx"].tolist() if "idx" in hub.columns else range(len(hub))
        labels = _label_names(hub["label"], SST2_LABELS, "label", source)
        return pd.DataFrame(
            {"item": [f"sst2-{i}" for i in items], "lang": "en", "text": hub[text].tolist(), "label": labels}
        )
    if name == "topic":
        labels = _label_names(hub["label"], AG_NEWS_LABELS, "label", source)
        items = [f"agnews-{i}" for i in range(len(hub))]
        return pd.DataFrame({"item": items, "lang": "en", "text": hub["text"].tolist(), "label": labels})
    choices = [list(c) for c in hub["choices"]]
    bad = [i for i, c in enumerate(choices) if len(c) != 4]
    if bad:
        raise DataFormatError(f"{source}, row {bad[0]}: MMLU rows need exactly 4 choices, got {len(choices[bad[0]])}")
    frame = pd.DataFrame(
        {"item": [f"mmlu-{i}" for i in range(len(hub))], "lang": "en", "question": hub["question"].tolist()}
    )
    for k, letter in enumerate(MCQA_LETTERS):
        frame[letter] = [c[k] for c in choices]
    frame["answer"] = _label_names(hub["answer"], MCQA_LETTERS, "answer", source)
    if "subject" in hub.columns:
        frame["subject"] = hub["subject"].tolist()
    return frame


def load_hub_task(
    name: str, source: str | Path | None = None, *, split: str | None = None, config: str | None = None
) -> TaskData:
    """SST-2 (sentiment), AG News (topic) or MMLU (mcqa) through ``datasets.load_dataset``.

    ``source`` is a hub id (default: ``HUB_SOURCES``) or a local ``.parquet``/``.csv``/``.json``
    file in the hub's column layout (e.g. a file from the data set's Parquet export).
    """
    import datasets

    spec, default = get_task(name), HUB_SOURCES[name]
    local = Path(source) if source is not None and Path(source).suffix in _LOCAL_FORMATS else None
    if local is not None:
        if not local.is_file():
            raise DataFormatError(f"data file {local} does not exist")
        dataset = datasets.load_dataset(_LOCAL_FORMATS[local.suffix], data_files=str(local), split="train")
        label = str(local)
    else:
        hub_id, split = str(source or default.dataset), split or default.split
        config = config if config is not None else (default.config if source is None else None)
        label = f"{hub_id}[{config or 'default'}]:{split}"
        try:
            dataset = datasets.load_dataset(hub_id, config, split=split)
        except (OSError, ValueError) as exc:  # ConnectionError, DatasetNotFoundError, unknown split
            raise DataFormatError(
                f"could not load {label} ({type(exc).__name__}: {str(exc).splitlines()[0]}); check the id, config and "
                "split and that the hub is reachable, or pass a local .parquet/.csv/.json file in the hub's layout"
            ) from exc
    hub = cast(pd.DataFrame, dataset.to_pandas())  # an iterator only when batched=True
    frame = validate(spec, hub_frame(name, hub, label), label)
    return TaskData(spec, frame, label, [str(local)] if local is not None else [])


# ---- prompts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    item: str
    text: str
    gold: str  # gold label
    demos: tuple[str, ...]  # items shown as demonstrations


def _query(spec: TaskSpec, template: Template, row: pd.Series) -> str:
    if spec.kind == "classify":
        return f"{template.input_field}: {str(row['text']).strip()}"
    options = "\n".join(f"{letter}. {str(row[letter]).strip()}" for letter in MCQA_LETTERS)
    return f"{template.input_field}: {str(row['question']).strip()}\n{options}"


def _block(spec: TaskSpec, template: Template, row: pd.Series, answered: bool) -> str:
    answer = spec.answers[row["label"]] if answered else ""
    return f"{_query(spec, template, row)}\n{template.answer_field}:{answer}"


DEMO_MODES = ("fixed", "per-item")


def select_items(
    data: TaskData, lang: str, n: int | None, seed: int = 0, exclude: frozenset[str] = frozenset()
) -> pd.DataFrame:
    """``n`` items of ``lang`` drawn with ``seed`` (all when ``n`` is None), in item order, leaving
    out the items in ``exclude`` (the fixed demonstrations).

    The draw is over sorted item ids, so parallel data sets get the same items in every language.
    """
    rows = data.rows(lang).sort_values("item", kind="stable")
    rows = rows[~rows["item"].isin(exclude)]
    if n is None or n >= len(rows):
        return rows
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    chosen = sorted(random.Random(f"{seed}:{data.spec.name}").sample(list(rows["item"]), n))
    return rows.set_index("item").loc[chosen].reset_index()


def fixed_demos(data: TaskData, lang: str, shots: int, seed: int = 0) -> pd.DataFrame:
    """The ``shots`` demonstrations every prompt of ``lang`` shows (``demos="fixed"``), with as
    many different gold labels as there are labels (a demonstration set of one label would bias
    every answer toward it).

    The items are taken in one seeded order of the task's item ids, the same in every language,
    so parallel data sets show the translations of the same demonstrations.
    """
    pool = data.rows(lang).set_index("item")
    order = sorted(set(data.frame["item"]))
    random.Random(f"{seed}:{data.spec.name}:demos").shuffle(order)
    candidates = [item for item in order if item in pool.index]
    picked: list[str] = []
    for item in candidates:  # first pass: one item per label, then any
        if len(picked) < shots and pool.loc[item, "label"] not in set(pool.loc[picked, "label"]):
            picked.append(item)
    picked += [item for item in candidates if item not in picked][: shots - len(picked)]
    return pool.loc[picked].reset_index()


def task_prompts(
    data: TaskData, lang: str, *, shots: int = 0, n: int | None = None, seed: int = 0, demos: str = "fixed"
) -> list[Prompt]:
    """Zero- or K-shot prompts for ``n`` items of ``lang``.

    ``demos="fixed"`` (the default): the same K demonstrations (:func:`fixed_demos`) open every
    prompt of the task and language, as in in-context evaluation with one demonstration set, and
    are never asked themselves; the prompts then share their whole demonstration prefix, which the
    exit probe encodes once. ``demos="per-item"``: each item draws its own K demonstrations with a
    seeded generator from the *other* items of the language. Either way a prompt never contains
    its own answer and does not depend on which items run.
    """
    if demos not in DEMO_MODES:
        raise ValueError(f"demos must be one of {', '.join(DEMO_MODES)}, got {demos!r}")
    spec, template = data.spec, data.spec.template(lang)
    pool = data.rows(lang).sort_values("item", kind="stable").reset_index(drop=True)
    if shots < 0 or shots > len(pool) - 1:
        raise ValueError(f"shots must be between 0 and {len(pool) - 1} (items in {lang} minus one), got {shots}")
    shared = fixed_demos(data, lang, shots, seed) if demos == "fixed" else None
    exclude = frozenset(shared["item"]) if shared is not None else frozenset()
    prompts = []
    for _, row in select_items(data, lang, n, seed, exclude).iterrows():
        if shared is None:
            others = pool.index[pool["item"] != row["item"]].tolist()
            picked = random.Random(f"{seed}:{spec.name}:{lang}:{row['item']}").sample(others, shots)
            shown = pool.loc[picked]
        else:
            shown = shared
        blocks = [_block(spec, template, demo, answered=True) for _, demo in shown.iterrows()]
        text = "\n\n".join([template.instruction, *blocks, _block(spec, template, row, answered=False)])
        prompts.append(Prompt(str(row["item"]), text, str(row["label"]), tuple(str(i) for i in shown["item"])))
    return prompts


def answer_token_ids(spec: TaskSpec, tokenizer, lang: str) -> dict[str, int]:
    """The token id of each label's answer, checking it is one token alone and after ``"<field>:"``."""
    field_name = spec.template(lang).answer_field
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    ids: dict[str, int] = {}
    for label, word in spec.answers.items():
        alone = tokenizer(word, add_special_tokens=False)["input_ids"]
        in_context = tokenizer(f"{field_name}:{word}", add_special_tokens=False)["input_ids"]
        if len(alone) != 1 or in_context[-1:] != alone:
            pieces = tokenizer.convert_ids_to_tokens(alone)
            raise TokenizerVocabularyError(
                f"answer {word!r} of task {spec.name!r} is not a single token in {name} "
                f"(it tokenizes as {pieces}, and after '{field_name}:' as "
                f"{tokenizer.convert_ids_to_tokens(in_context)}); use answers that are one token in this "
                "tokenizer (letters such as ' A' usually are), via a TaskSpec with other answers"
            )
        ids[label] = int(alone[0])
    if len(set(ids.values())) != len(ids):
        raise TokenizerVocabularyError(f"two answers of task {spec.name!r} map to the same token in {name}: {ids}")
    return ids
