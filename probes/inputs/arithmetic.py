"""Templated arithmetic word problems with numeric answers (the task of the layer-swapping
replay: Bandarkar et al., ICLR 2025, Table 1, where the task is MGSM-style math; here a task a
270M model learns in a few hundred CPU steps).

A problem is a kind (``add, sub, mul, div, class, pages, two_step, bags``), its numbers, an item
(apples, books, ...) and a name; it renders in English (the training language; the response is a
short English chain ``"5 + 3 = 8. The answer is 8."``) and in Swahili, Japanese, Spanish, Chinese
and Russian (evaluation; templates written for pivotlens with each language's grammar: Swahili
noun-class agreement of ``-ngapi``, Japanese counters, Chinese measure words, Russian plural
forms and cases, Spanish gender of ``cuántos/cuántas``). Numbers are digits in every language.
Numbers ending in 1 (but not 11) never occur in a question, so that Russian never needs the
singular accusative.

Accuracy: greedy generation after the prompt formatted as in fine-tuning
(:mod:`probes.inputs.instruction_data`: the chat template when the tokenizer has one, else
``question + "\\n\\n"``), the number read from the output (:func:`extract_number`: the last
number of the first paragraph, after Unicode NFKC so full-width digits count) and compared
with the answer.

Files (``data/arithmetic/``, see ``ARITHMETIC.md``): ``train.csv`` (English, with responses)
and ``eval.csv`` (the same problems in every language), written by ``python -m
probes.arithmetic`` from fixed seeds.
"""

from __future__ import annotations

import argparse
import random
import re
import unicodedata
from collections.abc import Sequence, Set
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from probes.backend.errors import DataFormatError
from probes.inputs import DATA_DIR
from probes.inputs.instruction_data import PLAIN_SEPARATOR, uses_chat_template

ARITHMETIC_DIR = DATA_DIR / "arithmetic"
TRAIN = ARITHMETIC_DIR / "train.csv"
EVAL = ARITHMETIC_DIR / "eval.csv"
LANGS: tuple[str, ...] = ("en", "sw", "ja", "es", "zh", "ru")
KINDS: tuple[str, ...] = ("add", "sub", "mul", "div", "class", "pages", "two_step", "bags")
TRAIN_SEED, EVAL_SEED = 11, 12
ITEMS: tuple[str, ...] = ("apples", "books", "pencils", "eggs", "oranges", "candies")


# ---- problems ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    kind: str
    numbers: tuple[int, ...]
    item: str
    name: int  # index into each language's name list

    @property
    def answer(self) -> int:
        a, b, *rest = self.numbers
        return {
            "add": lambda: a + b,
            "class": lambda: a + b,
            "pages": lambda: a + b,
            "sub": lambda: a - b,
            "mul": lambda: a * b,
            "div": lambda: a // b,
            "two_step": lambda: a + b - rest[0],
            "bags": lambda: a * b + rest[0],
        }[self.kind]()

    def chain(self) -> str:
        """The English solution: its equations and the answer sentence."""
        a, b, *rest = self.numbers
        if self.kind == "two_step":
            steps = [f"{a} + {b} = {a + b}", f"{a + b} - {rest[0]} = {self.answer}"]
        elif self.kind == "bags":
            steps = [f"{a} * {b} = {a * b}", f"{a * b} + {rest[0]} = {self.answer}"]
        else:
            op = {"add": "+", "class": "+", "pages": "+", "sub": "-", "mul": "*", "div": "/"}[self.kind]
            steps = [f"{a} {op} {b} = {self.answer}"]
        return f"{', '.join(steps)}. The answer is {self.answer}."


def _allowed(n: int) -> bool:
    return n >= 2 and not (n % 10 == 1 and n % 100 != 11)


def _draw(kind: str, rng: random.Random) -> tuple[int, ...]:
    def pick(lo: int, hi: int) -> int:
        return rng.choice([n for n in range(lo, hi + 1) if _allowed(n)])

    while True:
        if kind == "add":
            numbers = (pick(2, 40), pick(2, 30))
        elif kind == "sub":
            a = pick(10, 50)
            numbers = (a, pick(2, a - 2))
        elif kind == "mul":
            numbers = (pick(2, 9), pick(2, 9))
        elif kind == "div":
            b, q = pick(2, 9), pick(2, 9)
            numbers = (b * q, b)
        elif kind in ("class", "pages"):
            numbers = (pick(5, 60), pick(5, 60))
        elif kind == "two_step":
            a, b = pick(5, 30), pick(2, 20)
            numbers = (a, b, pick(2, a + b - 2))
        else:  # bags
            numbers = (pick(2, 6), pick(2, 9), pick(2, 15))
        if all(_allowed(n) for n in numbers):
            return numbers


def generate_problems(n: int, seed: int, *, exclude: Set[tuple] = frozenset(), n_names: int = 8) -> list[Problem]:
    """``n`` distinct problems, the kinds in turn, numbers, item and name drawn with ``seed``;
    problems whose ``(kind, numbers, item)`` is in ``exclude`` are skipped (keeps evaluation
    problems out of training)."""
    rng = random.Random(seed)
    seen: set[tuple] = set(exclude)
    out: list[Problem] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n:
            raise ValueError(f"cannot draw {n} distinct problems; ask for fewer")
        kind = KINDS[len(out) % len(KINDS)]
        problem = Problem(kind, _draw(kind, rng), rng.choice(ITEMS), rng.randrange(n_names))
        key = problem_key(problem)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out


def problem_key(problem: Problem) -> tuple:
    """What makes two problems the same task instance (names do not)."""
    item = problem.item if problem.kind not in ("class", "pages") else ""
    return (problem.kind, problem.numbers, item)


# ---- rendering --------------------------------------------------------------------------------
def _ru_plural(n: int, forms: tuple[str, str, str]) -> str:
    """Russian noun form after the numeral ``n``: (one, few, many)."""
    if n % 10 == 1 and n % 100 != 11:
        return forms[0]
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return forms[1]
    return forms[2]


NAMES = {
    "en": ["Anna", "Ben", "Carlos", "Maria", "Tom", "Lucy", "David", "Sara"],
    "sw": ["Juma", "Amina", "Baraka", "Neema", "Hassani", "Zawadi", "Omari", "Rehema"],
    "ja": ["太郎", "花子", "健太", "さくら", "翔太", "美咲", "大輔", "由美"],
    "es": ["María", "Juan", "Lucía", "Carlos", "Sofía", "Diego", "Elena", "Pablo"],
    "zh": ["小明", "小红", "小华", "小丽", "小刚", "小芳", "小军", "小梅"],
    # nominative, genitive, grammatical gender
    "ru": [
        ("Маша", "Маши", "f"),
        ("Иван", "Ивана", "m"),
        ("Аня", "Ани", "f"),
        ("Петя", "Пети", "m"),
        ("Оля", "Оли", "f"),
        ("Дима", "Димы", "m"),
        ("Катя", "Кати", "f"),
        ("Миша", "Миши", "m"),
    ],
}
ITEM_WORDS = {
    "en": {i: i for i in ITEMS},
    "es": {
        "apples": ("manzanas", "f"),
        "books": ("libros", "m"),
        "pencils": ("lápices", "m"),
        "eggs": ("huevos", "m"),
        "oranges": ("naranjas", "f"),
        "candies": ("caramelos", "m"),
    },
    # plural noun and its -ngapi ("how many") agreement
    "sw": {
        "apples": ("matofaa", "mangapi"),
        "books": ("vitabu", "vingapi"),
        "pencils": ("penseli", "ngapi"),
        "eggs": ("mayai", "mangapi"),
        "oranges": ("machungwa", "mangapi"),
        "candies": ("pipi", "ngapi"),
    },
    # noun and counter
    "ja": {
        "apples": ("りんご", "個"),
        "books": ("本", "冊"),
        "pencils": ("鉛筆", "本"),
        "eggs": ("卵", "個"),
        "oranges": ("みかん", "個"),
        "candies": ("あめ", "個"),
    },
    # noun and measure word
    "zh": {
        "apples": ("苹果", "个"),
        "books": ("书", "本"),
        "pencils": ("铅笔", "支"),
        "eggs": ("鸡蛋", "个"),
        "oranges": ("橙子", "个"),
        "candies": ("糖果", "颗"),
    },
    # (one, few, many) forms; the genitive plural is the third
    "ru": {
        "apples": ("яблоко", "яблока", "яблок"),
        "books": ("книга", "книги", "книг"),
        "pencils": ("карандаш", "карандаша", "карандашей"),
        "eggs": ("яйцо", "яйца", "яиц"),
        "oranges": ("апельсин", "апельсина", "апельсинов"),
        "candies": ("конфета", "конфеты", "конфет"),
    },
}


TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "add": "{name} has {a} {items}. {name} buys {b} more {items}. How many {items} does {name} have now?",
        "sub": "{name} has {a} {items}. {name} gives {b} {items} to a friend. How many {items} does {name} have left?",
        "mul": "There are {a} boxes. Each box has {b} {items}. How many {items} are there in total?",
        "div": "{name} shares {a} {items} equally among {b} friends. How many {items} does each friend get?",
        "class": "A class has {a} girls and {b} boys. How many students are in the class?",
        "pages": "{name} read {a} pages on Monday and {b} pages on Tuesday. How many pages did {name} read in total?",
        "two_step": "{name} has {a} {items} and buys {b} more. Then {name} gives {c} {items} to a friend. "
        "How many {items} does {name} have now?",
        "bags": "{name} buys {a} bags with {b} {items} in each bag, and {c} more {items}. "
        "How many {items} does {name} buy in total?",
    },
    "es": {
        "add": "{name} tiene {a} {items}. {name} compra {b} {items} más. ¿{how_many} {items} tiene {name} ahora?",
        "sub": "{name} tiene {a} {items}. {name} le regala {b} {items} a un amigo. ¿{how_many} {items} le quedan a {name}?",
        "mul": "Hay {a} cajas. Cada caja tiene {b} {items}. ¿{how_many} {items} hay en total?",
        "div": "{name} reparte {a} {items} en partes iguales entre {b} amigos. ¿{how_many} {items} recibe cada amigo?",
        "class": "En una clase hay {a} niñas y {b} niños. ¿Cuántos estudiantes hay en la clase?",
        "pages": "{name} leyó {a} páginas el lunes y {b} páginas el martes. ¿Cuántas páginas leyó {name} en total?",
        "two_step": "{name} tiene {a} {items} y compra {b} más. Después, {name} le regala {c} {items} a un amigo. "
        "¿{how_many} {items} tiene {name} ahora?",
        "bags": "{name} compra {a} bolsas con {b} {items} en cada bolsa, y {c} {items} más. "
        "¿{how_many} {items} compra {name} en total?",
    },
    "sw": {
        "add": "{name} ana {items} {a}. {name} ananunua {items} {b} zaidi. {name} ana {items} {ngapi} sasa?",
        "sub": "{name} ana {items} {a}. {name} anampa rafiki yake {items} {b}. {name} amebaki na {items} {ngapi}?",
        "mul": "Kuna masanduku {a}. Kila sanduku lina {items} {b}. Kuna {items} {ngapi} kwa jumla?",
        "div": "{name} anagawa {items} {a} kwa usawa kati ya marafiki {b}. Kila rafiki anapata {items} {ngapi}?",
        "class": "Darasa lina wasichana {a} na wavulana {b}. Kuna wanafunzi wangapi darasani?",
        "pages": "{name} alisoma kurasa {a} Jumatatu na kurasa {b} Jumanne. {name} alisoma kurasa ngapi kwa jumla?",
        "two_step": "{name} ana {items} {a} na ananunua {items} {b} zaidi. Kisha {name} anampa rafiki yake {items} {c}. "
        "{name} ana {items} {ngapi} sasa?",
        "bags": "{name} ananunua mifuko {a}, na kila mfuko una {items} {b}. Pia ananunua {items} {c} zaidi. "
        "{name} ananunua {items} {ngapi} kwa jumla?",
    },
    "ja": {
        "add": "{name}は{item}を{a}{ctr}持っています。{name}はさらに{item}を{b}{ctr}買いました。{name}は今、{item}を何{ctr}持っていますか？",
        "sub": "{name}は{item}を{a}{ctr}持っています。{name}は友達に{item}を{b}{ctr}あげました。{name}の{item}は何{ctr}残っていますか？",
        "mul": "箱が{a}個あります。それぞれの箱に{item}が{b}{ctr}入っています。{item}は全部で何{ctr}ありますか？",
        "div": "{name}は{item}{a}{ctr}を{b}人の友達に同じ数ずつ分けます。友達1人は{item}を何{ctr}もらえますか？",
        "class": "あるクラスには女の子が{a}人、男の子が{b}人います。クラスには全部で何人の生徒がいますか？",
        "pages": "{name}は月曜日に{a}ページ、火曜日に{b}ページ本を読みました。{name}は全部で何ページ読みましたか？",
        "two_step": "{name}は{item}を{a}{ctr}持っていて、さらに{b}{ctr}買いました。その後、友達に{item}を{c}{ctr}あげました。"
        "{name}は今、{item}を何{ctr}持っていますか？",
        "bags": "{name}は{item}が{b}{ctr}ずつ入った袋を{a}袋と、{item}を{c}{ctr}買いました。{name}が買った{item}は全部で何{ctr}ですか？",
    },
    "zh": {
        "add": "{name}有{a}{m}{item}。{name}又买了{b}{m}{item}。{name}现在有多少{m}{item}？",
        "sub": "{name}有{a}{m}{item}。{name}送给朋友{b}{m}{item}。{name}还剩多少{m}{item}？",
        "mul": "有{a}个盒子，每个盒子里有{b}{m}{item}。一共有多少{m}{item}？",
        "div": "{name}把{a}{m}{item}平均分给{b}个朋友。每个朋友分到多少{m}{item}？",
        "class": "一个班有{a}名女生和{b}名男生。这个班一共有多少名学生？",
        "pages": "{name}星期一读了{a}页书，星期二读了{b}页书。{name}一共读了多少页书？",
        "two_step": "{name}有{a}{m}{item}，又买了{b}{m}。然后{name}送给朋友{c}{m}{item}。{name}现在有多少{m}{item}？",
        "bags": "{name}买了{a}袋{item}，每袋有{b}{m}，又买了{c}{m}{item}。{name}一共买了多少{m}{item}？",
    },
    "ru": {
        "add": "У {gen} есть {items_a}. {name} покупает ещё {items_b}. Сколько {many} теперь у {gen}?",
        "sub": "У {gen} есть {items_a}. {name} отдаёт другу {items_b}. Сколько {many} осталось у {gen}?",
        "mul": "Есть {boxes_a}. В каждой коробке лежит по {items_b}. Сколько всего {many}?",
        "div": "{name} делит {items_a} поровну между {b} друзьями. Сколько {many} получит каждый друг?",
        "class": "В классе {girls_a} и {boys_b}. Сколько всего учеников в классе?",
        "pages": "В понедельник {name} {read} {pages_a}, а во вторник — {pages_b}. Сколько всего страниц {read} {name}?",
        "two_step": "У {gen} есть {items_a}, и {name} покупает ещё {b}. Потом {name} отдаёт другу {items_c}. "
        "Сколько {many} теперь у {gen}?",
        "bags": "{name} покупает {bags_a}, в каждом по {items_b}, и ещё {items_c}. Сколько всего {many} покупает {name}?",
    },
}
RU_NOUNS = {
    "boxes": ("коробка", "коробки", "коробок"),
    "girls": ("девочка", "девочки", "девочек"),
    "boys": ("мальчик", "мальчика", "мальчиков"),
    "pages": ("страницу", "страницы", "страниц"),
    "bags": ("пакет", "пакета", "пакетов"),
}


def _words(problem: Problem, lang: str) -> dict[str, object]:
    """The language's words for a problem's name and item (with their agreement), by template field."""
    name, item = NAMES[lang][problem.name], ITEM_WORDS[lang][problem.item]
    if lang == "en":
        return {"name": name, "items": item}
    if lang == "es":
        return {"name": name, "items": item[0], "how_many": "Cuántas" if item[1] == "f" else "Cuántos"}
    if lang == "sw":
        return {"name": name, "items": item[0], "ngapi": item[1]}
    if lang == "ja":
        return {"name": name, "item": item[0], "ctr": item[1]}
    if lang == "zh":
        return {"name": name, "item": item[0], "m": item[1]}
    # ru: a numeral with its noun in the form the number asks for, for each number slot
    nominative, genitive, gender = name
    counted = {f"items_{slot}": f"{n} {_ru_plural(n, item)}" for slot, n in zip("abc", _slots(problem))}
    for noun, forms in RU_NOUNS.items():
        counted |= {f"{noun}_{slot}": f"{n} {_ru_plural(n, forms)}" for slot, n in zip("abc", _slots(problem))}
    return {
        "name": nominative,
        "gen": genitive,
        "many": item[2],
        "read": "прочитала" if gender == "f" else "прочитал",
        **counted,
    }


def _slots(problem: Problem) -> tuple[int, int, int]:
    a, b, *rest = problem.numbers
    return a, b, rest[0] if rest else 0


def render(problem: Problem, lang: str) -> str:
    if lang not in TEMPLATES:
        raise DataFormatError(f"no arithmetic templates for {lang!r}; available: {', '.join(TEMPLATES)}")
    a, b, c = _slots(problem)
    return TEMPLATES[lang][problem.kind].format(a=a, b=b, c=c, **_words(problem, lang))


def problem_table(
    problems: Sequence[Problem], langs: Sequence[str], prefix: str, *, responses: bool = False
) -> pd.DataFrame:
    """``id, lang, kind, question, answer[, response]``: every problem in every language."""
    rows = []
    for lang in langs:
        for index, problem in enumerate(problems):
            row = {
                "id": f"{prefix}{index:04d}",
                "lang": lang,
                "kind": problem.kind,
                "question": render(problem, lang),
                "answer": problem.answer,
            }
            if responses:
                row["response"] = problem.chain()
            rows.append(row)
    return pd.DataFrame(rows)


def write_data(folder: str | Path = ARITHMETIC_DIR, *, n_train: int = 2000, n_eval: int = 200) -> tuple[Path, Path]:
    """Write ``train.csv`` (English) and ``eval.csv`` (every language) from the fixed seeds; the
    evaluation problems are drawn first and kept out of training."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    evaluation = generate_problems(n_eval, EVAL_SEED)
    train = generate_problems(n_train, TRAIN_SEED, exclude={problem_key(p) for p in evaluation})
    problem_table(train, ["en"], "t", responses=True).to_csv(folder / "train.csv", index=False)
    problem_table(evaluation, LANGS, "e").to_csv(folder / "eval.csv", index=False)
    return folder / "train.csv", folder / "eval.csv"


def load_problems(
    path: str | Path = EVAL, langs: Sequence[str] | None = None, limit: int | None = None
) -> pd.DataFrame:
    """A problem file (``id, lang, kind, question, answer``), optionally some languages and the
    first ``limit`` problems of each."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; write the data with `python -m probes.inputs.arithmetic`")
    table = pd.read_csv(path, dtype={"id": str, "lang": str})
    missing = {"id", "lang", "question", "answer"} - set(table.columns)
    if missing:
        raise DataFormatError(f"{path}: missing columns {sorted(missing)}; expected id, lang, kind, question, answer")
    if langs is not None:
        absent = [lang for lang in langs if lang not in set(table["lang"])]
        if absent:
            raise DataFormatError(f"{path} has no problems in {absent}; it has {sorted(set(table['lang']))}")
        table = table[table["lang"].isin(list(langs))]
    if limit is not None:
        table = table.groupby("lang", sort=False).head(limit)
    return table.reset_index(drop=True)


# ---- evaluation -------------------------------------------------------------------------------
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def extract_number(text: str) -> float | None:
    """The last number in the first non-empty paragraph of ``text`` (NFKC-normalised, so
    full-width digits count; ``,`` or ``.`` between digits is a decimal point, except a
    thousands group ``1,200``); ``None`` if there is none."""
    text = unicodedata.normalize("NFKC", text)
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    for paragraph in paragraphs[:1]:
        numbers = _NUMBER.findall(paragraph)
        if numbers:
            last = numbers[-1]
            if re.fullmatch(r"\d{1,3}[.,]\d{3}", last):
                return float(last.replace(",", "").replace(".", ""))
            return float(last.replace(",", "."))
    return None


def prompt_ids(tokenizer, question: str) -> list[int]:
    """The prompt as fine-tuning formats it (:func:`probes.inputs.instruction_data.tokenize_pair`)."""
    if uses_chat_template(tokenizer):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(question + PLAIN_SEPARATOR, add_special_tokens=True)["input_ids"])


def main() -> None:
    parser = argparse.ArgumentParser(description="Write data/arithmetic/train.csv and eval.csv from the fixed seeds.")
    parser.add_argument("--out", default=str(ARITHMETIC_DIR))
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-eval", type=int, default=200)
    args = parser.parse_args()
    for path in write_data(args.out, n_train=args.n_train, n_eval=args.n_eval):
        print(path)


if __name__ == "__main__":
    main()
