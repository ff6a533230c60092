"""The sentence grammar of the synthetic corpus: what a user says to a voice assistant.

``RULES`` maps a symbol to its alternatives. An alternative is a string of tokens:

* a lowercase word (letters only: no digits, apostrophes or punctuation, so transcripts,
  tokenizer text and WER need no normalisation),
* ``{symbol}``: expands another rule, chosen uniformly,
* ``|``: a *pause point*. The words before it are plainly unfinished ("set a timer for",
  "the weather in"), so a speaker may hesitate there without ending the turn. The corpus
  draws mid-turn pauses only at these points,
* a final ``?``: the sentence is a question (espeak then uses question intonation).

Everything is deterministic given a ``random.Random``. ``SENTENCE`` is the start symbol.

A model trained on grammar sentences alone learns to write the sentences it expects, not what it hears. So
``sample_sentence`` mixes three kinds (``SENTENCE_MIX``): grammar sentences (half: the turn-taking cues live
in them), *slot swaps* (a quarter: a slot filled from another intent's rule, "set a timer for the eiffel
tower"), and *shuffles* (a quarter: vocabulary words in random order, so that only the sound can tell them).

Written form, as Kyutai's STT writes: a capital at the start of each sentence, proper nouns capitalised
(``PROPER``: cities, days, names, countries, landmarks; "i" as "I"), a final "." or "?". The spoken form
(``Sentence.words``) stays lowercase letters; ``Sentence.written`` is the same words with case and punctuation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

PAUSE = "|"

RULES: dict[str, list[str]] = {
    "SENTENCE": [
        "{timer}", "{timer}", "{alarm}", "{weather}", "{weather}", "{food}", "{food}", "{navigation}",
        "{navigation}", "{device}", "{device}", "{media}", "{phone}", "{math}", "{calendar}",
        "{reminder}", "{smalltalk}", "{smalltalk}", "{fact}", "{shopping}",
    ],
    # --- timers and alarms -------------------------------------------------------------------
    "timer": [
        "set a timer for | {duration}", "set a {timer_name} timer for | {duration}",
        "start a timer for | {duration}", "cancel the | {timer_name} timer",
        "how much time is left on the | {timer_name} timer ?", "pause the timer", "stop the timer",
        "add | {duration} to the timer", "set a timer called | {timer_name} for {duration}",
    ],
    "timer_name": ["pasta", "pizza", "egg", "tea", "laundry", "oven", "bread", "rice", "workout", "kitchen"],
    "duration": [
        "{count} minutes", "{count} seconds", "{count} hours", "one minute", "an hour", "half an hour",
        "an hour and a half", "{count} minutes and {count} seconds", "a quarter of an hour",
    ],
    "alarm": [
        "wake me up at | {time}", "set an alarm for | {time}", "set an alarm for | {time} {day}",
        "turn off my | {ordinal} alarm", "what time is my alarm tomorrow ?", "snooze the alarm",
        "move my alarm to | {time}", "what time is it in | {city} ?", "what time is it ?",
    ],
    "time": [
        "{hour} {minute}", "{hour} {minute} in the {daypart}", "half past {hour}",
        "quarter past {hour}", "quarter to {hour}", "{hour} in the {daypart}", "noon", "midnight",
        "{hour} {minute} am", "{hour} {minute} pm", "{hour} am", "{hour} pm",
    ],
    "hour": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
             "twelve"],
    "minute": ["fifteen", "thirty", "forty five", "ten", "twenty", "fifty", "oh five", "twenty five"],
    "daypart": ["morning", "afternoon", "evening"],
    "day": [
        "today", "tomorrow", "tonight", "on monday", "on tuesday", "on wednesday", "on thursday",
        "on friday", "on saturday", "on sunday", "this weekend", "next week", "tomorrow morning",
    ],
    # --- weather ------------------------------------------------------------------------------
    "weather": [
        "what is the weather in | {city} ?", "what is the weather like | {day} ?",
        "will it rain in | {city} {day} ?", "how hot will it be | {day} ?", "how cold is it outside ?",
        "do i need an umbrella | {day} ?", "is it going to snow | {day} ?",
        "what is the forecast for | {city} ?", "how windy is it in | {city} ?",
        "what is the temperature in | {city} right now ?", "will it be sunny | {day} ?",
    ],
    "city": [
        "paris", "london", "berlin", "madrid", "rome", "tokyo", "boston", "chicago", "seattle", "denver",
        "toronto", "sydney", "dublin", "lisbon", "vienna", "new york", "san francisco", "los angeles",
        "amsterdam", "oslo", "cairo", "mexico city",
    ],
    # --- ordering food ------------------------------------------------------------------------
    "food": [
        "i would like to | order {dish}", "i would like to order | {dish}", "can i get | {dish} ?",
        "i would like | {dish} please", "can i have | {drink} with {dish} ?", "add | {dish} to my order",
        "i will have | {dish} and {drink}", "could you bring us | {drink} ?",
        "i would like a table for | {count} people", "remove the | {food_item} from my order",
        "what do you recommend for | {meal} ?", "can we see the | {menu_part} menu ?",
        "is the {food_item} | {diet} ?", "the bill please", "that is all thank you",
    ],
    "dish": [
        "a {size} pizza with {topping}", "a {food_item}", "{count} {food_items}", "a bowl of {soup} soup",
        "the {food_item} with {side}", "a {size} {food_item}", "{count} {food_items} with {side}",
    ],
    "food_item": ["burger", "salad", "sandwich", "pizza", "steak", "taco", "burrito", "omelette",
                  "pancake", "curry", "noodle soup", "chicken wrap", "bagel", "muffin", "croissant"],
    "food_items": ["burgers", "salads", "sandwiches", "tacos", "burritos", "pancakes", "bagels", "muffins",
                   "croissants", "cookies", "donuts", "hot dogs"],
    "topping": ["mushrooms", "extra cheese", "pepperoni", "olives", "onions", "peppers", "ham and pineapple",
                "spinach", "tomatoes"],
    "side": ["fries", "rice", "a side salad", "garlic bread", "mashed potatoes", "beans", "vegetables"],
    "soup": ["tomato", "chicken", "lentil", "onion", "pumpkin", "vegetable", "mushroom"],
    "size": ["small", "medium", "large", "big", "extra large"],
    "drink": ["a coffee", "a tea", "a glass of water", "an orange juice", "a lemonade", "two coffees",
              "a hot chocolate", "a glass of milk", "a bottle of sparkling water", "an iced tea"],
    "meal": ["breakfast", "lunch", "dinner", "dessert"],
    "menu_part": ["dessert", "drinks", "lunch", "kids", "wine"],
    "diet": ["vegetarian", "vegan", "gluten free", "spicy", "fresh"],
    # --- navigation ---------------------------------------------------------------------------
    "navigation": [
        "take me to | {place}", "how do i get to | {place} ?", "navigate to | {place}",
        "how far is | {place} ?", "how far is it to | {city} ?", "find {place_indef} near | {landmark}",
        "turn left at the | {ordinal} {street_thing}", "turn right at the | {ordinal} {street_thing}",
        "is there {place_indef} | near here ?", "avoid the | {road_thing}",
        "how long will it take to | get home ?",
        "show me the way to | {place}", "where is the nearest | {poi} ?",
    ],
    "place": ["the airport", "the train station", "the hospital", "the library", "the museum", "home",
              "work", "the office", "the beach", "the park", "the city center", "the nearest {poi}",
              "{city}", "the stadium", "the hotel"],
    "place_indef": ["a {poi}", "a good restaurant", "an open pharmacy", "a parking lot", "a coffee shop"],
    "poi": ["gas station", "pharmacy", "bakery", "supermarket", "bus stop", "bank", "post office",
            "restaurant", "cafe", "bookstore", "parking garage"],
    "landmark": ["the river", "the bridge", "the main square", "the old church", "the university",
                 "the central market", "the harbor"],
    "street_thing": ["light", "corner", "intersection", "street", "exit", "roundabout"],
    "road_thing": ["highway", "toll roads", "traffic", "tunnel", "city center"],
    "ordinal": ["first", "second", "third", "fourth", "next", "last"],
    # --- smart home and devices ---------------------------------------------------------------
    "device": [
        "turn on the | {appliance}", "turn off the | {appliance}", "turn on the {appliance} in the | {room}",
        "turn off the {appliance} in the | {room}", "set the {settable} to | {count} percent",
        "set the thermostat to | {count} degrees", "dim the lights in the | {room}",
        "is the {appliance} in the | {room} on ?", "lock the | {door}", "open the | {door}",
        "make the lights | {color}", "make it warmer in the | {room}",
    ],
    "appliance": ["lights", "heating", "fan", "air conditioning", "television", "radio", "oven",
                  "dishwasher", "washing machine", "coffee machine", "lamp"],
    "settable": ["volume", "brightness", "fan speed", "lights"],
    "room": ["kitchen", "bedroom", "living room", "bathroom", "office", "garage", "hallway", "basement"],
    "door": ["front door", "back door", "garage door", "windows"],
    "color": ["blue", "red", "green", "warm white", "yellow", "purple", "orange"],
    # --- music, phone, math -------------------------------------------------------------------
    "media": [
        "play some | {genre}", "play some {genre} in the | {room}", "turn the volume | {updown}",
        "skip this song", "play the next | episode", "what song is this ?", "pause the music",
        "play my | {playlist} playlist", "play the news", "play {genre} music by | {artist}",
    ],
    "genre": ["jazz", "rock", "classical music", "pop", "country", "blues", "reggae", "hip hop",
              "folk music"],
    "updown": ["up", "down", "up a little", "down a bit"],
    "playlist": ["morning", "workout", "dinner", "road trip", "relaxing", "party", "favorite"],
    "artist": ["the band", "my favorite singer", "a local band", "the orchestra"],
    "phone": [
        "call | {person}", "call {person} on | {phone_kind}", "send a message to | {person}",
        "send a message to {person} saying | {message}", "text {person} that | {message}",
        "what is the phone number of | {person} ?", "read my messages", "did {person} call me ?",
        "my number is | {digits}", "dial | {digits}",
    ],
    "person": ["mom", "dad", "my sister", "my brother", "grandma", "the doctor", "the office", "john",
               "sarah", "david", "maria", "peter", "emma", "my boss", "the dentist", "lucy", "tom"],
    "phone_kind": ["speaker", "video", "his mobile", "her mobile", "the landline"],
    "message": ["i am running late", "i will be home soon", "see you tonight", "call me back",
                "i am on my way", "dinner is ready", "happy birthday", "thank you so much",
                "i will be there in {count} minutes"],
    "digits": ["{digit} {digit} {digit} {digit} {digit} {digit} {digit}",
               "{digit} {digit} {digit} | {digit} {digit} {digit} {digit}"],
    "digit": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"],
    "math": [
        "what is | {count} plus {count} ?", "what is {count} times | {count} ?",
        "what is {count} minus | {count} ?",
        "what is | {count} divided by {count} ?", "convert | {count} {unit} to {unit}",
        "how many {unit} are in | a {unit_one} ?", "what is {count} percent of | {count} ?",
        "what is the square root of | {count} ?",
    ],
    "unit": ["miles", "kilometers", "pounds", "kilograms", "cups", "liters", "ounces", "grams",
             "inches", "feet", "meters", "degrees", "dollars", "euros"],
    "unit_one": ["mile", "kilometer", "pound", "kilogram", "cup", "liter", "foot", "meter", "gallon"],
    # --- numbers ------------------------------------------------------------------------------
    "count": ["{small}", "{small}", "{teen}", "{tens}", "{tens} {small}", "one hundred", "{small} hundred"],
    "small": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "teen": ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
             "eighteen", "nineteen"],
    "tens": ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"],
    # --- calendar, reminders, shopping --------------------------------------------------------
    "calendar": [
        "what is on my calendar | {day} ?", "schedule a meeting with | {person} {day}",
        "schedule a meeting with {person} at | {time}", "cancel my meeting with | {person}",
        "when is my next | {event} ?", "move my {event} to | {day}", "am i free | {day} at {time} ?",
        "add {event} to my calendar for | {day}",
    ],
    "event": ["meeting", "appointment", "dentist appointment", "lunch", "flight", "class", "interview",
              "haircut", "yoga class", "doctor visit"],
    "reminder": [
        "remind me to | {task}", "remind me to {task} | {day}", "remind me to {task} at | {time}",
        "remind me in | {duration} to {task}", "what are my reminders for | {day} ?",
        "delete the reminder about | {task_short}",
    ],
    "task": ["call {person}", "buy milk", "take out the trash", "water the plants", "feed the cat",
             "walk the dog", "pay the rent", "pick up the kids", "take my medicine", "check the oven",
             "book a flight to {city}", "send the report", "clean the kitchen"],
    "task_short": ["the rent", "the plants", "the laundry", "the report", "the dog", "the trash"],
    "shopping": [
        "add | {grocery} to my shopping list", "add {grocery} and | {grocery} to the list",
        "what is on my | shopping list ?", "remove {grocery} from | the list", "order more | {grocery}",
        "how much is | {grocery} ?",
    ],
    "grocery": ["milk", "eggs", "bread", "butter", "cheese", "apples", "bananas", "coffee", "rice",
                "pasta", "chicken", "olive oil", "yogurt", "orange juice", "tomatoes", "potatoes"],
    # --- small talk and facts -----------------------------------------------------------------
    "smalltalk": [
        "hello", "hi there", "good morning", "good evening", "good night", "thank you", "thank you very much",
        "thanks a lot", "how are you today ?", "what is your name ?", "tell me a joke", "tell me a story",
        "that sounds great", "never mind", "yes please", "no thank you", "sorry i did not catch that",
        "can you repeat that ?", "what can you do ?", "i am feeling {mood} today", "have a nice day",
        "see you later", "that is not what i asked", "please speak more slowly", "wait a moment",
    ],
    "mood": ["great", "tired", "happy", "sad", "hungry", "bored", "excited", "sleepy"],
    "fact": [
        "what is the capital of | {country} ?", "how tall is | {landmark_famous} ?",
        "when does the | {poi} close ?", "when does the {poi} open | {day} ?",
        "who invented the | {invention} ?",
        "how many people live in | {city} ?", "how old is | {landmark_famous} ?",
        "tell me something about | {country}", "what language do they speak in | {country} ?",
    ],
    "country": ["france", "spain", "germany", "italy", "japan", "canada", "brazil", "egypt", "norway",
                "portugal", "mexico", "australia", "kenya", "india", "sweden"],
    "landmark_famous": ["the eiffel tower", "mount everest", "the empire state building", "big ben",
                        "the golden gate bridge", "the statue of liberty"],
    "invention": ["telephone", "light bulb", "airplane", "radio", "computer", "bicycle", "printing press"],
}

_SLOT = re.compile(r"^\{(\w+)\}$")
_WORD = re.compile(r"^[a-z]+$")


SENTENCE_MIX = (("grammar", 0.5), ("swap", 0.25), ("shuffle", 0.25))
P_SWAP_SLOT = 0.35  # in a swap sentence, the chance that each slot takes another rule's expansion
SHUFFLE_WORDS = (2, 9)
P_SHUFFLE_QUESTION = 0.25

# Words written with a capital, as a transcript would (multi-word names are capitalised word by word).
PROPER = frozenset("""
paris london berlin madrid rome tokyo boston chicago seattle denver toronto sydney dublin lisbon vienna new
york san francisco los angeles amsterdam oslo cairo mexico monday tuesday wednesday thursday friday saturday
sunday john sarah david maria peter emma lucy tom france spain germany italy japan canada brazil egypt norway
portugal australia kenya india sweden eiffel everest empire ben golden gate liberty statue mount i
""".split())


def written_form(words: list[str], question: bool) -> list[str]:
    """The words as a transcript writes them: capitals and the final punctuation."""
    out = ["I" if w == "i" else (w.capitalize() if w in PROPER else w) for w in words]
    if out:
        out[0] = out[0][:1].upper() + out[0][1:]
        out[-1] += "?" if question else "."
    return out


@dataclass
class Sentence:
    """One expanded sentence: its words, where a pause may go, and whether it is a question."""

    words: list[str]
    pause_points: list[int]  # a pause may follow words[i - 1] for each i in this list (0 < i < len)
    question: bool
    kind: str = "grammar"  # "grammar", "swap" or "shuffle" (see SENTENCE_MIX)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def written(self) -> list[str]:
        return written_form(self.words, self.question)

    @property
    def written_text(self) -> str:
        return " ".join(self.written)


def _expand(symbol: str, rng: random.Random, out: list[str], depth: int = 0, p_swap: float = 0.0) -> None:
    if depth > 20:
        raise RecursionError(f"grammar recursion too deep at {symbol!r}")
    for token in rng.choice(RULES[symbol]).split():
        m = _SLOT.match(token)
        if m:
            slot = m.group(1)
            if depth > 0 and p_swap and rng.random() < p_swap:
                slot = rng.choice(_SWAPPABLE)  # a slot of another intent: no template predicts it
            _expand(slot, rng, out, depth + 1, p_swap if depth < 2 else 0.0)
        else:
            out.append(token)


def sample_sentence(rng: random.Random, kind: str | None = None) -> Sentence:
    """Draw one sentence: of ``kind`` ("grammar", "swap", "shuffle"), or of a kind drawn from SENTENCE_MIX."""
    if kind is None:
        kinds, weights = zip(*SENTENCE_MIX)
        kind = rng.choices(kinds, weights=weights)[0]
    if kind == "shuffle":
        vocab = vocabulary()
        words = [rng.choice(vocab) for _ in range(rng.randint(*SHUFFLE_WORDS))]
        # No pause points: inside a random word string nothing says "unfinished", and the end-of-turn heads
        # should learn only from sentences where something does.
        return Sentence(words, [], rng.random() < P_SHUFFLE_QUESTION, "shuffle")
    if kind not in ("grammar", "swap"):
        raise ValueError(f"unknown sentence kind {kind!r}; known: {[k for k, _ in SENTENCE_MIX]}")
    tokens: list[str] = []
    _expand("SENTENCE", rng, tokens, p_swap=P_SWAP_SLOT if kind == "swap" else 0.0)
    words: list[str] = []
    points: list[int] = []
    question = False
    for token in tokens:
        if token == PAUSE:
            if words and len(words) not in points:
                points.append(len(words))
        elif token == "?":
            question = True
        else:
            words.append(token)
    # A pause point at the very end would not be mid-turn.
    points = [p for p in points if 0 < p < len(words)]
    return Sentence(words, points, question, kind)


def sample_texts(n: int, seed: int = 0, written: bool = False) -> list[str]:
    """``n`` texts (one to three sentences each) for tokenizer training; ``written``: with case and punctuation."""
    if n <= 0:
        raise ValueError(f"sample_texts needs n > 0, got {n}")
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        k = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        sentences = [sample_sentence(rng) for _ in range(k)]
        texts.append(" ".join(s.written_text if written else s.text for s in sentences))
    return texts


_VOCABULARY: list[str] = []


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted."""
    if _VOCABULARY:
        return list(_VOCABULARY)
    words = set()
    for alternatives in RULES.values():
        for alt in alternatives:
            for token in alt.split():
                if token not in (PAUSE, "?") and not _SLOT.match(token):
                    words.add(token)
    _VOCABULARY.extend(sorted(words))
    return list(_VOCABULARY)


def check_grammar() -> None:
    """Raise ValueError on a malformed rule (unknown symbol, word with non-letters)."""
    for name, alternatives in RULES.items():
        if not alternatives:
            raise ValueError(f"grammar rule {name!r} has no alternatives")
        for alt in alternatives:
            tokens = alt.split()
            for i, token in enumerate(tokens):
                m = _SLOT.match(token)
                if m and m.group(1) not in RULES:
                    raise ValueError(f"grammar rule {name!r} refers to unknown symbol {token}")
                if token == "?" and (i != len(tokens) - 1 or name not in _question_rules()):
                    raise ValueError(f"'?' must end a top-level sentence rule, found in {name!r}: {alt!r}")
                if not m and token not in (PAUSE, "?") and not _WORD.match(token):
                    raise ValueError(f"grammar rule {name!r} has a non-word token {token!r}")


def _question_rules() -> set[str]:
    return _TOP_RULES


_TOP_RULES = {m.group(1) for alt in RULES["SENTENCE"] if (m := _SLOT.match(alt))}
# Slots a swap may draw from: every rule but the start symbol and the intents themselves.
_SWAPPABLE = sorted(set(RULES) - _TOP_RULES - {"SENTENCE"})
