#!/usr/bin/env python3
"""Write a CSV of N generated contacts, for `oml-server import-contacts` benchmarks.

    python bench/make_contacts_csv.py 1000000 /tmp/contacts.csv
    python bench/make_contacts_csv.py 1000 /tmp/c.csv --columns TELEFONO,NOMBRE,id_ext --bad-every 100

The default columns are the demo lab's `demo-leads` database (campaign 1 of lab/demo.yaml):
TELEFONO (main phone), NOMBRE, CELULAR, id_ext (external id). Phones and external ids are
unique and never collide with the demo's own contacts. `--bad-every K` makes every K-th row
invalid (a phone with letters), to measure the error path too.
"""
import argparse
import csv
import random

FIRST = ["Ana", "Bruno", "Carla", "Diego", "Eva", "Facundo", "Gala", "Hugo", "Inés", "Juan"]
LAST = ["Pérez", "Díaz", "Gómez", "Vera", "Sosa", "Ruiz", "Rojas", "Luna", "Ríos", "Paz"]


def value(column, i, rng):
    name = column.lower()
    if name in ("telefono", "phone"):
        return f"35{i + 20_000_000:09d}"
    if name in ("celular", "mobile"):
        return f"+549{i + 30_000_000:09d}"
    if name in ("id_ext", "external_id"):
        return f"bench-{i}"
    if name in ("nombre", "name"):
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return f"{column}-{i}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of contact rows")
    parser.add_argument("path", help="CSV file to write")
    parser.add_argument("--columns", default="TELEFONO,NOMBRE,CELULAR,id_ext",
                        help="comma-separated header (default: the demo's demo-leads columns)")
    parser.add_argument("--bad-every", type=int, default=0, metavar="K",
                        help="make every K-th row's main phone invalid")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    rng = random.Random(args.seed)
    with open(args.path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for i in range(1, args.n + 1):
            row = [value(c, i, rng) for c in columns]
            if args.bad_every and i % args.bad_every == 0:
                row[0] = f"bad-{i}"
            writer.writerow(row)


if __name__ == "__main__":
    main()
