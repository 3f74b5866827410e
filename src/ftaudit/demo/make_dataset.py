"""Generate the demo task dataset (run once; its output is committed under `ftaudit/demo/data/`).

Task: read a customer-support message and extract four fields as one JSON object:
  {"intent": ..., "order_id": ... | null, "product": ... | null, "urgency": "low" | "medium" | "high"}
Success is measurable: exact match of the JSON and per-field accuracy on the held-out split.

Every message is synthetic. About a third carry planted personal data (names, e-mail addresses, phone numbers,
IBANs, from Faker with a fixed seed) so the data-governance features have something real to find; the fields to
extract never contain personal data, so a model that learns the task has no reason to emit it.

    python -m ftaudit.demo.make_dataset [--out DIR] [--train N] [--eval N] [--seed S]

Needs `faker` (a dev dependency); the demo itself only reads the committed JSONL.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

INSTRUCTION = (
    "Extract the intent, order_id, product and urgency from this customer-support message. "
    "Answer with one JSON object only.\n\nMessage: "
)

INTENTS = ["order_status", "refund_request", "cancel_order", "damaged_item", "change_address", "billing_question"]

PRODUCTS = [
    "blender", "coffee machine", "desk lamp", "running shoes", "wireless headphones", "office chair",
    "backpack", "electric kettle", "yoga mat", "smartwatch", "air fryer", "bluetooth speaker",
    "winter jacket", "water bottle", "phone case", "vacuum cleaner", "toaster", "camping tent",
    "gaming mouse", "bed sheets",
]

# {p} product, {o} order id. Each intent has phrasings with and without an order id / product.
TEMPLATES: dict[str, list[str]] = {
    "order_status": [
        "Hi, where is my order {o}? I ordered a {p} last week and it still hasn't shipped.",
        "Can you tell me when my {p} will arrive? The order number is {o}.",
        "Tracking for order {o} has not updated in days. It's the {p} I bought.",
        "Hello, I'm still waiting for the {p} from order {o}. Any news on delivery?",
        "Has my order shipped yet? I bought a {p} but never got a confirmation.",
        "What is the delivery date for order {o}?",
    ],
    "refund_request": [
        "I returned the {p} from order {o} two weeks ago and still have no refund.",
        "Please refund my money for the {p}, order {o}. It's not what I expected.",
        "I want my money back for order {o}. The {p} doesn't work as advertised.",
        "Could you process a refund for the {p} I sent back? Order {o}.",
        "I'd like a refund for the {p} I bought, I no longer need it.",
    ],
    "cancel_order": [
        "Please cancel order {o}, I ordered the {p} by mistake.",
        "I need to cancel my order {o} before it ships. It was a {p}.",
        "Cancel the {p} I just ordered please, order number {o}.",
        "I changed my mind about the {p}. Can you cancel order {o}?",
        "Please cancel my last order, I don't need it anymore.",
    ],
    "damaged_item": [
        "The {p} from order {o} arrived broken. The box was crushed.",
        "My {p} came damaged, there's a crack on the side. Order {o}.",
        "Order {o} arrived today but the {p} is scratched and doesn't turn on.",
        "The {p} I received is defective, one part is missing and another is bent.",
        "Received order {o} and the {p} inside is smashed.",
    ],
    "change_address": [
        "I moved last week. Can you send order {o} to my new address instead?",
        "Please update the delivery address for order {o}, the {p} should go to my office.",
        "Can I change the shipping address on my {p} order? It's order {o}.",
        "Wrong address on order {o}! Please correct it before the {p} ships.",
        "I need to change the delivery address for my order, I'm moving.",
    ],
    "billing_question": [
        "I was charged twice for order {o}. Can you check my bill?",
        "Why is there an extra fee on my invoice for the {p}? Order {o}.",
        "My card was charged but I never placed order {o}. What is this charge?",
        "Can you send me an invoice for the {p}? I need it for my company.",
        "The price I paid for the {p} is higher than the one on your website.",
    ],
}

URGENCY_CUES = {
    "high": [
        "This is urgent!", "I need this sorted today.", "Please respond ASAP.",
        "It's an emergency, please hurry.", "I need an answer immediately.",
    ],
    "low": [
        "No rush, whenever you get a chance.", "It's not urgent.", "Take your time.",
        "Just let me know when you can.",
    ],
    "medium": ["", "Thanks.", "Thank you for your help.", "Kind regards."],
}

GREETINGS = ["", "Hello, ", "Hi there, ", "Good morning, ", "Dear support, "]


def _order_id(rng: random.Random) -> str:
    return f"{rng.choice('ABCDKMRTX')}-{rng.randint(10000, 99999)}"


def _pii_sentence(fake, rng: random.Random, intent: str) -> str | None:
    """Planted personal data: a signature, a contact request or bank details (about a third of messages)."""
    roll = rng.random()
    if roll < 0.14:
        return f"{fake.name()}, {fake.email()}"
    if roll < 0.24:
        return f"You can call me on {fake.phone_number()}. {fake.first_name()}"
    if roll < 0.30 and intent in ("refund_request", "billing_question"):
        return f"Please send the money to my account {fake.iban()}, account holder {fake.name()}."
    if roll < 0.34:
        return f"My name is {fake.name()} and my email is {fake.email()}."
    return None


def make_example(fake, rng: random.Random) -> dict:
    intent = rng.choice(INTENTS)
    template = rng.choice(TEMPLATES[intent])
    urgency = rng.choices(["low", "medium", "high"], weights=[1, 2, 1.5])[0]
    product = rng.choice(PRODUCTS) if "{p}" in template else None
    order_id = _order_id(rng) if "{o}" in template else None
    body = template.format(p=product or "", o=order_id or "")
    greeting = rng.choice(GREETINGS)
    if greeting and not body.startswith(("Hi,", "Hello,")):
        body = greeting + body[0].lower() + body[1:]
    parts = [body]
    cue = rng.choice(URGENCY_CUES[urgency])
    if cue:
        parts.insert(rng.choice([0, 1]), cue)
    pii = _pii_sentence(fake, rng, intent)
    if pii:
        parts.append(pii)
    message = " ".join(parts)
    fields = {"intent": intent, "order_id": order_id, "product": product, "urgency": urgency}
    return {"prompt": INSTRUCTION + message, "completion": json.dumps(fields)}


def generate(n_train: int, n_eval: int, seed: int) -> tuple[list[dict], list[dict]]:
    from faker import Faker

    fake = Faker(["en_GB", "en_US", "de_DE", "fr_FR", "nl_NL"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict] = []
    while len(rows) < n_train + n_eval:
        ex = make_example(fake, rng)
        if ex["prompt"] in seen:  # no duplicate prompts, so train and eval never share a message
            continue
        seen.add(ex["prompt"])
        rows.append(ex)
    return rows[:n_train], rows[n_train:]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "data"))
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args(argv)
    from ftaudit.io import atomic_write_text

    train, held_out = generate(args.train, args.eval, args.seed)
    out = Path(args.out)
    for name, rows in (("support_train.jsonl", train), ("support_eval.jsonl", held_out)):
        atomic_write_text(out / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"wrote {len(rows)} records to {out / name}")


if __name__ == "__main__":
    main()
