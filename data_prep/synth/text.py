"""Sentence generator: small per-language grammars (templates over word classes) and user text.

Every language has a few sentence templates over word classes written here (subject and object noun
phrases, verbs, adverbials, counted nouns) and numbers spelled out (num2words, or a table here for
Turkish, Kyrgyz and Tatar whose num2words output is missing or written as one word). Each language has
well over 10k distinct sentences with a structure an n-gram LM can learn. Sentences are indexed
(mixed-radix over the slots), so drawing distinct sentences is drawing distinct integers.

Word lists are short and written for this project; nothing is copied from third-party text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech_ssl.errors import DataError

# --- numbers -------------------------------------------------------------------------------------

_TURKIC_NUMBERS = {
    "tr": ("bir iki üç dört beş altı yedi sekiz dokuz".split(),
           "on yirmi otuz kırk elli altmış yetmiş seksen doksan".split()),
    "ky": ("бир эки үч төрт беш алты жети сегиз тогуз".split(),
           "он жыйырма отуз кырк элүү алтымыш жетимиш сексен токсон".split()),
    "tt": ("бер ике өч дүрт биш алты җиде сигез тугыз".split(),
           "ун егерме утыз кырык илле алтмыш җитмеш сиксән туксан".split()),
}


def number_words(n: int, lang: str) -> str:
    """``n`` (1..99) spelled out in ``lang`` as written (num2words; e.g. 'forty-three', 'vierzig')."""
    if not 1 <= n <= 99:
        raise ValueError(f"number {n} out of range 1..99")
    if lang in _TURKIC_NUMBERS:
        units, tens = _TURKIC_NUMBERS[lang]
        parts = ([tens[n // 10 - 1]] if n >= 10 else []) + ([units[n % 10 - 1]] if n % 10 else [])
        return " ".join(parts)
    from num2words import num2words

    return num2words(n, lang=lang).replace(",", "")


def _numbers_for(lang: str) -> list[int]:
    """Numbers that agree with every counted noun of ``lang`` (see the grammar notes)."""
    ns = range(2, 100)
    if lang in ("es", "it", "sv", "pt", "fr"):
        # 'veintiún', 'ventun', 'tjugoett', 'vinte e uma': forms ending in 1 depend on the noun
        return [n for n in ns if n % 10 != 1]
    if lang == "ru":
        # genitive plural after 5..20 and after tens ending in 0 or 5..9
        return [n for n in ns if 5 <= n <= 20 or (n > 20 and n % 10 in (0, 5, 6, 7, 8, 9))]
    return list(ns)


# --- grammars ------------------------------------------------------------------------------------
# Slots: S subject (nominative, singular), V verb (3rd person singular, transitive), O object,
# A adverbial (time), N number, C counted noun (form that follows a number >= 2).

_G: dict[str, dict[str, list[str] | str]] = {
    "en": {
        "S": ["the old man", "the young woman", "my brother", "our teacher", "the little girl", "the doctor",
              "her neighbour", "a tall farmer", "anna", "peter", "the baker", "his sister", "the driver"],
        "V": ["sees", "buys", "sells", "finds", "needs", "brings", "wants", "paints", "carries", "likes",
              "cleans", "opens"],
        "O": ["a red car", "the old book", "a big house", "the new table", "some warm bread", "a blue pen",
              "the small dog", "a green door", "the white shirt", "a heavy bag", "the wooden chair",
              "a fresh apple", "the black box"],
        "A": ["in the morning", "every day", "at night", "on monday", "after lunch", "this evening",
              "on the weekend", "before dinner", "right now", "in the summer", "every friday"],
        "C": ["apples", "books", "chairs", "bottles", "letters", "flowers", "stones", "cups", "boxes"],
        "T": "S V O A|A S V O|S V N C A|S V O and O",
    },
    "de": {
        "S": ["der alte Mann", "die junge Frau", "mein Bruder", "unser Lehrer", "das kleine Mädchen",
              "der Arzt", "ihre Nachbarin", "ein großer Bauer", "Anna", "Peter", "der Bäcker", "seine Schwester",
              "die Fahrerin"],
        "V": ["sieht", "kauft", "verkauft", "findet", "braucht", "bringt", "will", "malt", "trägt", "mag",
              "putzt", "öffnet"],
        "O": ["ein rotes Auto", "das alte Buch", "ein großes Haus", "den neuen Tisch", "warmes Brot",
              "einen blauen Stift", "den kleinen Hund", "eine grüne Tür", "das weiße Hemd", "eine schwere Tasche",
              "den hölzernen Stuhl", "einen frischen Apfel", "die schwarze Kiste"],
        "A": ["am Morgen", "jeden Tag", "in der Nacht", "am Montag", "nach dem Essen", "heute Abend",
              "am Wochenende", "vor dem Abendessen", "gerade jetzt", "im Sommer", "jeden Freitag"],
        "C": ["Äpfel", "Bücher", "Stühle", "Flaschen", "Briefe", "Blumen", "Steine", "Tassen", "Kisten"],
        "T": "S V O A|A V S O|S V N C A|S V O und O",
    },
    "fr": {
        "S": ["le vieil homme", "la jeune femme", "mon frère", "notre professeur", "la petite fille",
              "le médecin", "sa voisine", "un grand fermier", "Anne", "Pierre", "le boulanger", "ma sœur",
              "le chauffeur"],
        "V": ["voit", "achète", "vend", "trouve", "cherche", "apporte", "veut", "peint", "porte", "aime",
              "nettoie", "ouvre"],
        "O": ["une voiture rouge", "le vieux livre", "une grande maison", "la nouvelle table", "du pain chaud",
              "un stylo bleu", "le petit chien", "une porte verte", "la chemise blanche", "un sac lourd",
              "la chaise en bois", "une pomme fraîche", "la boîte noire"],
        "A": ["le matin", "tous les jours", "la nuit", "lundi", "après le déjeuner", "ce soir",
              "le week-end", "avant le dîner", "maintenant", "en été", "chaque vendredi"],
        "C": ["pommes", "livres", "chaises", "bouteilles", "lettres", "fleurs", "pierres", "tasses", "boîtes"],
        "T": "S V O A|A S V O|S V N C A|S V O et O",
    },
    "es": {
        "S": ["el hombre mayor", "la mujer joven", "mi hermano", "nuestro profesor", "la niña pequeña",
              "el médico", "su vecina", "un granjero alto", "Ana", "Pedro", "el panadero", "mi hermana",
              "el conductor"],
        "V": ["ve", "compra", "vende", "encuentra", "necesita", "trae", "quiere", "pinta", "lleva", "limpia",
              "abre", "busca"],
        "O": ["un coche rojo", "el libro viejo", "una casa grande", "la mesa nueva", "pan caliente",
              "un bolígrafo azul", "el perro pequeño", "una puerta verde", "la camisa blanca",
              "una bolsa pesada", "la silla de madera", "una manzana fresca", "la caja negra"],
        "A": ["por la mañana", "todos los días", "por la noche", "el lunes", "después de comer",
              "esta tarde", "el fin de semana", "antes de cenar", "ahora mismo", "en verano", "cada viernes"],
        "C": ["libros", "vasos", "árboles", "platos", "coches", "lápices", "zapatos", "huevos", "papeles"],
        "T": "S V O A|A S V O|S V N C A|S V O y O",
    },
    "it": {
        "S": ["il vecchio", "la giovane donna", "mio fratello", "il nostro maestro", "la bambina",
              "il medico", "la sua vicina", "un contadino alto", "Anna", "Pietro", "il fornaio", "mia sorella",
              "l'autista"],
        "V": ["vede", "compra", "vende", "trova", "cerca", "porta", "vuole", "dipinge", "pulisce", "apre",
              "prende", "lava"],
        "O": ["una macchina rossa", "il libro vecchio", "una casa grande", "il tavolo nuovo", "il pane caldo",
              "una penna blu", "il cane piccolo", "una porta verde", "la camicia bianca", "una borsa pesante",
              "la sedia di legno", "una mela fresca", "la scatola nera"],
        "A": ["la mattina", "ogni giorno", "di notte", "lunedì", "dopo pranzo", "stasera", "nel fine settimana",
              "prima di cena", "adesso", "d'estate", "ogni venerdì"],
        "C": ["libri", "bicchieri", "alberi", "piatti", "fiori", "sassi", "quaderni", "biscotti", "giornali"],
        "T": "S V O A|A S V O|S V N C A|S V O e O",
    },
    "nl": {
        "S": ["de oude man", "de jonge vrouw", "mijn broer", "onze leraar", "het kleine meisje", "de dokter",
              "haar buurvrouw", "een lange boer", "Anna", "Pieter", "de bakker", "zijn zus", "de chauffeur"],
        "V": ["ziet", "koopt", "verkoopt", "vindt", "zoekt", "brengt", "wil", "schildert", "draagt", "maakt",
              "opent", "pakt"],
        "O": ["een rode auto", "het oude boek", "een groot huis", "de nieuwe tafel", "warm brood",
              "een blauwe pen", "de kleine hond", "een groene deur", "het witte hemd", "een zware tas",
              "de houten stoel", "een verse appel", "de zwarte doos"],
        "A": ["in de ochtend", "elke dag", "'s nachts", "op maandag", "na de lunch", "vanavond",
              "in het weekend", "voor het eten", "nu meteen", "in de zomer", "elke vrijdag"],
        "C": ["appels", "boeken", "stoelen", "flessen", "brieven", "bloemen", "stenen", "kopjes", "dozen"],
        "T": "S V O A|A V S O|S V N C A|S V O en O",
    },
    "pt": {
        "S": ["o homem velho", "a mulher jovem", "o meu irmão", "o nosso professor", "a menina pequena",
              "o médico", "a sua vizinha", "um agricultor alto", "Ana", "Pedro", "o padeiro", "a minha irmã",
              "o motorista"],
        "V": ["vê", "compra", "vende", "encontra", "procura", "traz", "quer", "pinta", "leva", "limpa",
              "abre", "guarda"],
        "O": ["um carro vermelho", "o livro velho", "uma casa grande", "a mesa nova", "pão quente",
              "uma caneta azul", "o cão pequeno", "uma porta verde", "a camisa branca", "um saco pesado",
              "a cadeira de madeira", "uma maçã fresca", "a caixa preta"],
        "A": ["de manhã", "todos os dias", "à noite", "na segunda", "depois do almoço", "esta tarde",
              "no fim de semana", "antes do jantar", "agora mesmo", "no verão", "cada sexta"],
        "C": ["livros", "copos", "pratos", "carros", "lápis", "sapatos", "ovos", "papéis", "bancos"],
        "T": "S V O A|A S V O|S V N C A|S V O e O",
    },
    "ru": {
        "S": ["старый человек", "молодая женщина", "мой брат", "наш учитель", "маленькая девочка", "врач",
              "её соседка", "высокий фермер", "Анна", "Пётр", "пекарь", "моя сестра", "водитель"],
        "V": ["видит", "покупает", "продаёт", "находит", "ищет", "приносит", "хочет", "рисует", "несёт",
              "любит", "моет", "открывает"],
        "O": ["красную машину", "старую книгу", "большой дом", "новый стол", "тёплый хлеб", "синюю ручку",
              "маленькую собаку", "зелёную дверь", "белую рубашку", "тяжёлую сумку", "деревянный стул",
              "свежее яблоко", "чёрную коробку"],
        "A": ["утром", "каждый день", "ночью", "в понедельник", "после обеда", "сегодня вечером",
              "в выходные", "перед ужином", "прямо сейчас", "летом", "каждую пятницу"],
        "C": ["яблок", "книг", "стульев", "бутылок", "писем", "цветов", "камней", "чашек", "коробок"],
        "T": "S V O A|A S V O|S V N C A|S V O и O",
    },
    "sv": {
        "S": ["den gamla mannen", "den unga kvinnan", "min bror", "vår lärare", "den lilla flickan",
              "läkaren", "hennes granne", "en lång bonde", "Anna", "Per", "bagaren", "min syster", "chauffören"],
        "V": ["ser", "köper", "säljer", "hittar", "söker", "hämtar", "behöver", "målar", "bär", "gillar",
              "städar", "öppnar"],
        "O": ["en röd bil", "den gamla boken", "ett stort hus", "det nya bordet", "varmt bröd", "en blå penna",
              "den lilla hunden", "en grön dörr", "den vita skjortan", "en tung väska", "den gröna stolen",
              "ett färskt äpple", "den svarta lådan"],
        "A": ["på morgonen", "varje dag", "på natten", "på måndag", "efter lunch", "i kväll", "i helgen",
              "före middagen", "just nu", "på sommaren", "varje fredag"],
        "C": ["äpplen", "böcker", "stolar", "flaskor", "brev", "blommor", "stenar", "koppar", "lådor"],
        "T": "S V O A|A V S O|S V N C A|S V O och O",
    },
    "tr": {
        "S": ["yaşlı adam", "genç kadın", "benim kardeşim", "öğretmenimiz", "küçük kız", "doktor",
              "komşumuz", "uzun boylu çiftçi", "Ali", "Ayşe", "fırıncı", "kız kardeşim", "şoför"],
        "V": ["görüyor", "alıyor", "satıyor", "buluyor", "arıyor", "getiriyor", "istiyor", "boyuyor",
              "taşıyor", "seviyor", "temizliyor", "açıyor"],
        "O": ["kırmızı arabayı", "eski kitabı", "büyük evi", "yeni masayı", "sıcak ekmeği", "mavi kalemi",
              "küçük köpeği", "yeşil kapıyı", "beyaz gömleği", "ağır çantayı", "tahta sandalyeyi",
              "taze elmayı", "siyah kutuyu"],
        "A": ["sabahleyin", "her gün", "gece", "pazartesi günü", "öğle yemeğinden sonra", "bu akşam",
              "hafta sonu", "akşam yemeğinden önce", "şimdi", "yazın", "her cuma", "ilkbaharda"],
        "C": ["elma", "kitap", "sandalye", "şişe", "mektup", "çiçek", "taş", "fincan", "kutu"],
        "T": "S A O V|A S O V|S A N C V|S O ve O V",
    },
    "ky": {
        "S": ["карыя", "жаш аял", "менин агам", "биздин мугалим", "кичинекей кыз", "дарыгер", "биздин кошуна",
              "бийик дыйкан", "Айгүл", "Бакыт", "наабайчы", "менин эжем", "айдоочу"],
        "V": ["көрөт", "сатып алат", "сатат", "табат", "издейт", "алып келет", "каалайт", "боёйт",
              "көтөрөт", "жакшы көрөт", "тазалайт", "ачат"],
        "O": ["кызыл машинаны", "эски китепти", "чоң үйдү", "жаңы столду", "ысык нанды", "көк калемди",
              "кичинекей итти", "жашыл эшикти", "ак көйнөктү", "оор сумканы", "жыгач отургучту",
              "жаңы алманы", "кара кутуну"],
        "A": ["эртең менен", "ар күнү", "түнкүсүн", "дүйшөмбү күнү", "түштөн кийин", "бүгүн кечинде",
              "дем алыш күндөрү", "кечки тамактан мурун", "азыр", "жайында", "ар жума сайын"],
        "C": ["алма", "китеп", "отургуч", "бөтөлкө", "кат", "гүл", "таш", "чыны", "куту"],
        "T": "S A O V|A S O V|S A N C V|S O жана O V",
    },
    "tt": {
        "S": ["карт кеше", "яшь хатын", "минем абыем", "безнең укытучы", "кечкенә кыз", "табиб",
              "безнең күрше", "озын буйлы игенче", "Айгөл", "Рөстәм", "икмәк пешерүче", "минем апам", "шофер"],
        "V": ["күрә", "сатып ала", "сата", "таба", "эзли", "алып килә", "тели", "буяй", "күтәрә", "ярата",
              "чистарта", "ача"],
        "O": ["кызыл машинаны", "иске китапны", "зур йортны", "яңа өстәлне", "кайнар икмәкне",
              "зәңгәр каләмне", "кечкенә этне", "яшел ишекне", "ак күлмәкне", "авыр сумканы",
              "агач урындыкны", "яңа алманы", "кара тартманы"],
        "A": ["иртән", "көн саен", "төнлә", "дүшәмбе көнне", "төштән соң", "бүген кич", "ял көннәрендә",
              "кичке ашка кадәр", "хәзер", "җәен", "һәр җомга"],
        "C": ["алма", "китап", "урындык", "шешә", "хат", "чәчәк", "таш", "чынаяк", "тартма"],
        "T": "S A O V|A S O V|S A N C V|S O һәм O V",
    },
}

LANGUAGES = tuple(_G)

_WORD_RE = re.compile(r"[^\w' ]+")
_DOTTED_I = ("tr", "az")  # languages whose i/ı case pairs are İ/I


def capitalize(s: str, lang: str) -> str:
    """First letter upper-cased (Turkish i -> İ)."""
    if not s:
        return s
    first = "İ" if (s[0] == "i" and lang in _DOTTED_I) else s[0].upper()
    return first + s[1:]


def normalize_words(sentence: str, lang: str = "") -> list[str]:
    """Label words of a sentence: NFC, lowercase, hyphens to spaces, punctuation dropped, apostrophes kept
    inside words (LibriSpeech/CommonVoice-style normalization)."""
    s = unicodedata.normalize("NFC", sentence)
    if lang in _DOTTED_I:
        s = s.replace("İ", "i").replace("I", "ı")
    s = s.lower().replace("-", " ").replace("’", "'")
    s = _WORD_RE.sub(" ", s)
    words = [w.strip("'") for w in s.split()]
    return [w for w in words if w and not w.isdigit()]


def letters(words: list[str]) -> str:
    """fairseq letter labels: ``'h e l l o | w o r l d |'``."""
    return " ".join(" ".join(w) + " |" for w in words)


@dataclass
class Template:
    slots: list[list[str]]  # one list of fillers per position (fixed words are 1-element lists)

    @property
    def size(self) -> int:
        n = 1
        for s in self.slots:
            n *= len(s)
        return n

    def render(self, index: int) -> str:
        parts = []
        for s in reversed(self.slots):
            index, k = divmod(index, len(s))
            parts.append(s[k])
        return " ".join(reversed(parts))


class Grammar:
    """The sentence space of one language: ``len(g)`` distinct sentences, ``g.sentence(i)`` the i-th.

    Sentences are written as a reader sees them (first letter capitalised, final period).
    """

    def __init__(self, lang: str):
        if lang not in _G:
            raise ValueError(f"no grammar for language {lang!r} (have {', '.join(LANGUAGES)}); use --text-dir")
        g = _G[lang]
        self.lang = lang
        nums = [number_words(n, lang) for n in _numbers_for(lang)]
        classes = {k: list(v) for k, v in g.items() if k != "T"} | {"N": nums}
        self.templates = []
        for t in str(g["T"]).split("|"):
            slots = []
            for tok in t.split():
                slots.append(classes[tok] if tok in classes else [tok])
            self.templates.append(Template(slots))
        self._offsets = np.cumsum([0] + [t.size for t in self.templates])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def sentence(self, index: int) -> str:
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        s = self.templates[k].render(int(index - self._offsets[k]))
        return capitalize(s, self.lang) + "."

    def sample(self, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` distinct sentences in random order: a template uniformly, then its fillers uniformly.

        Raises when the grammar cannot give ``n`` distinct sentences (after a bounded number of draws).
        """
        seen: set[str] = set()
        out: list[str] = []
        sizes = np.array([t.size for t in self.templates])
        for _ in range(50):
            need = n - len(out)
            if need <= 0:
                break
            k = rng.integers(0, len(self.templates), size=2 * need + 16)
            within = (rng.random(size=k.size) * sizes[k]).astype(np.int64)
            for kk, ii in zip(k, within):
                s = self.sentence(int(self._offsets[kk] + ii))
                if s not in seen:
                    seen.add(s)
                    out.append(s)
                    if len(out) == n:
                        break
        if len(out) < n:
            raise ValueError(f"{self.lang}: the grammar gave {len(out)} distinct sentences, {n} asked")
        return out


def read_text_file(path: str | Path) -> list[str]:
    """User sentences, one per line (blank lines skipped, duplicates dropped, order kept).

    Digits are rejected (labels need numbers spelled out) with a :class:`DataError` naming file:line.
    """
    path = Path(path)
    out, seen = [], set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text: {e}", path) from None
    for i, line in enumerate(lines, 1):
        s = " ".join(line.split())
        if not s:
            continue
        if any(c.isdigit() for c in s):
            raise DataError(f"digits in {s!r}: spell numbers out as words", path, i)
        if not normalize_words(s):
            raise DataError(f"no words in {s!r}", path, i)
        if s not in seen:
            seen.add(s)
            out.append(s)
    if not out:
        raise DataError("no sentences", path)
    return out


def split_sentences(sentences: list[str], counts: dict[str, int], rng: np.random.Generator) -> dict[str, list[str]]:
    """Partition distinct ``sentences`` into sentence-disjoint splits with ``counts[split]`` items each.

    When there are fewer sentences than requested, each split gets a proportional share and its
    sentences repeat (read by different speakers), keeping the splits disjoint.
    """
    sentences = list(sentences)
    order = rng.permutation(len(sentences))
    sentences = [sentences[i] for i in order]
    total = sum(counts.values())
    names = list(counts)
    if total <= len(sentences):
        sizes = dict(counts)
    else:
        if len(sentences) < sum(1 for c in counts.values() if c > 0):
            raise ValueError(f"{len(sentences)} distinct sentences cannot make {len(names)} disjoint splits")
        sizes = {k: (max(1, len(sentences) * c // total) if c > 0 else 0) for k, c in counts.items()}
        sizes[names[0]] = len(sentences) - sum(v for k, v in sizes.items() if k != names[0])
    out, start = {}, 0
    for k in names:
        part = sentences[start: start + sizes[k]]
        start += sizes[k]
        out[k] = [part[i % len(part)] for i in range(counts[k])] if part else []
    return out
