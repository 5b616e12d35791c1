"""Generate the bundled sample dataset (``runner/data/store.sqlite``) from a fixed seed.

Run ``python -m runner.data.generate [--out PATH] [--seed N]``. The same seed always produces the
same rows (``random.Random`` is stable across CPython versions for the calls used here), so the
committed file can be regenerated and checked. Names are invented; emails use example.com.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path

from runner.data import SAMPLE_DB

DEFAULT_SEED = 20240501
N_CUSTOMERS = 400
N_ORDERS = 2500

_FIRST = [
    "Ada", "Alan", "Grace", "Linus", "Edsger", "Barbara", "Ken", "Dennis", "Margaret", "John",
    "Frances", "Donald", "Radia", "Tim", "Katherine", "Niklaus", "Guido", "Sophie", "Hedy",
    "Claude",
]  # fmt: skip
_LAST = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Dijkstra", "Liskov", "Thompson", "Ritchie",
    "Hamilton", "Backus", "Allen", "Knuth", "Perlman", "Berners", "Johnson", "Wirth", "Rossum",
    "Wilson", "Lamarr", "Shannon",
]  # fmt: skip
_CITIES = [
    ("Lisbon", "PT"), ("Porto", "PT"), ("Madrid", "ES"), ("Barcelona", "ES"), ("Paris", "FR"),
    ("Lyon", "FR"), ("Berlin", "DE"), ("Munich", "DE"), ("Amsterdam", "NL"), ("Milan", "IT"),
    ("Dublin", "IE"), ("Vienna", "AT"),
]  # fmt: skip
_SEGMENTS = [("consumer", 0.7), ("small_business", 0.22), ("enterprise", 0.08)]
_CATEGORIES = {
    "Coffee": ["Espresso Beans", "Filter Blend", "Decaf Roast", "Single Origin", "Cold Brew Pack"],
    "Tea": ["Green Sencha", "Earl Grey", "Chamomile", "Rooibos", "Masala Chai"],
    "Equipment": ["Hand Grinder", "Pour-over Kettle", "French Press", "Moka Pot", "Scale"],
    "Accessories": ["Paper Filters", "Ceramic Mug", "Travel Cup", "Cleaning Tablets", "Tamper"],
    "Snacks": ["Almond Biscotti", "Dark Chocolate", "Oat Cookies", "Granola Bar", "Shortbread"],
}
_PRICE_RANGE = {
    "Coffee": (8.0, 24.0),
    "Tea": (5.0, 16.0),
    "Equipment": (25.0, 140.0),
    "Accessories": (3.0, 22.0),
    "Snacks": (2.0, 9.0),
}
_STATUSES = [("delivered", 0.82), ("shipped", 0.07), ("cancelled", 0.06), ("returned", 0.05)]
_CHANNELS = [("web", 0.6), ("mobile", 0.3), ("phone", 0.1)]
_START = date(2024, 1, 1)
_DAYS = 540

SCHEMA = """
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    segment TEXT NOT NULL,
    signup_date TEXT NOT NULL
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    unit_price REAL NOT NULL,
    unit_cost REAL NOT NULL
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(customer_id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL,
    channel TEXT NOT NULL
);
CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(order_id),
    product_id INTEGER NOT NULL REFERENCES products(product_id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,
    discount REAL NOT NULL
);
CREATE INDEX idx_orders_customer ON orders(customer_id);
CREATE INDEX idx_items_order ON order_items(order_id);
"""


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def generate(out: Path, seed: int = DEFAULT_SEED) -> None:
    """Write the sample store database to ``out`` (replaced if it exists)."""
    rng = random.Random(seed)
    out.unlink(missing_ok=True)
    conn = sqlite3.connect(out)
    try:
        conn.executescript(SCHEMA)
        customers = []
        for cid in range(1, N_CUSTOMERS + 1):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            city, country = rng.choice(_CITIES)
            signup_date = _START + timedelta(days=rng.randrange(_DAYS))
            email = f"{first.lower()}.{last.lower()}.{cid}@example.com"
            customers.append(
                (
                    cid,
                    f"{first} {last}",
                    email,
                    city,
                    country,
                    _pick(rng, _SEGMENTS),
                    str(signup_date),
                )
            )
        conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?)", customers)

        products = []
        pid = 0
        for category, names in _CATEGORIES.items():
            low, high = _PRICE_RANGE[category]
            for name in names:
                for variant in ("Standard", "Premium"):
                    pid += 1
                    price = round(rng.uniform(low, high) * (1.6 if variant == "Premium" else 1), 2)
                    cost = round(price * rng.uniform(0.35, 0.7), 2)
                    products.append((pid, f"{name} ({variant})", category, price, cost))
        conn.executemany("INSERT INTO products VALUES (?,?,?,?,?)", products)

        orders, items = [], []
        item_id = 0
        for oid in range(1, N_ORDERS + 1):
            cid, _, _, _, _, segment, signup = rng.choice(customers)
            signup_day = date.fromisoformat(signup)
            remaining = (_START + timedelta(days=_DAYS) - signup_day).days
            order_day = signup_day + timedelta(days=rng.randrange(max(remaining, 1)))
            orders.append((oid, cid, str(order_day), _pick(rng, _STATUSES), _pick(rng, _CHANNELS)))
            for _ in range(rng.choices([1, 2, 3, 4], weights=[0.45, 0.3, 0.17, 0.08])[0]):
                item_id += 1
                product = rng.choice(products)
                qty = rng.randint(1, 6 if segment == "consumer" else 20)
                discount = rng.choice([0.0, 0.0, 0.0, 0.05, 0.1, 0.15])
                items.append((item_id, oid, product[0], qty, product[3], discount))
        conn.executemany("INSERT INTO orders VALUES (?,?,?,?,?)", orders)
        conn.executemany("INSERT INTO order_items VALUES (?,?,?,?,?,?)", items)
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()


def main() -> None:
    """Command-line entry: regenerate the dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLE_DB)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    generate(args.out, args.seed)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
