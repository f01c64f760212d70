#!/usr/bin/env python3
"""Writes the bad-input corpus of tests/tests/bad_input.rs (tests/corpus/files/).

Each file is small and readable; the interesting lines come first (line 2 = the first data
line), then valid filler rows so that one bad row stays under the 5% reject threshold.
The expected outcome of every file is written in tests/tests/bad_input.rs. The files are
committed; this script only documents how they were made (re-run it to regenerate them).
"""
import gzip
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")
ORDERS = "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price"
CUSTOMERS = "customer_id,customer_name,postal_code"
REVIEWS = "review,product_id"


def order(i):
    return f"{i},{i % 97 + 1},2026-01-{i % 28 + 1:02},{i % 13 + 1},1.50,2,3.00"


def orders(lines, total=40, header=ORDERS, first_filler=1001, sep="\n"):
    filler = [order(i) for i in range(first_filler, first_filler + total - len(lines))]
    return (sep.join([header] + lines + filler) + sep).encode()


def customers(lines, total=40):
    filler = [f"{i},Customer {i},{10000 + i}" for i in range(1001, 1001 + total - len(lines))]
    return ("\n".join([CUSTOMERS] + lines + filler) + "\n").encode()


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


os.makedirs(HERE, exist_ok=True)
# Valid versions that land first, so a rejected later version must leave them in place.
write("good_orders.csv", orders([], total=10, first_filler=1))
write("good_reviews.csv", ("\n".join([REVIEWS] + [f"{i % 5 + 1},{i}" for i in range(1, 11)]) + "\n").encode())
write("good_orders.csv.gz", gzip.compress(orders([], total=10, first_filler=1), mtime=0))

# Whole-file rejections.
write("wrong_header.csv", orders([], header=ORDERS.replace("order_id", "order_no")))
write("missing_column.csv", ("\n".join([ORDERS.rsplit(",", 1)[0]] + [order(i).rsplit(",", 1)[0] for i in range(1, 41)]) + "\n").encode())
write("extra_column.csv", ("\n".join([ORDERS + ",discount"] + [order(i) + ",0" for i in range(1, 41)]) + "\n").encode())
write("duplicate_header_column.csv", orders([], header=ORDERS.replace("product_id", "order_id")))
write("empty.csv", b"")
write("invalid_utf8_header.csv", orders([]).replace(b"order_date", b"order_\xffdate", 1))
write("corrupt.csv.gz", b"\x1f\x8b\x08\x00this is not deflate data")
write("not_gzip.csv.gz", orders([]))
write("truncated.csv.gz", gzip.compress(orders([]), mtime=0)[:-40])
write("over_threshold_reviews.csv", ("\n".join([REVIEWS, "9,1", "0,2", "five,3", "6,4"] + [f"{i % 5 + 1},{i}" for i in range(5, 11)]) + "\n").encode())

# Files that load, whole or in part.
write("header_only.csv", (ORDERS + "\n").encode())
write("bom.csv", b"\xef\xbb\xbf" + orders([]))
write("crlf.csv", orders([], sep="\r\n"))
write("no_final_newline.csv", orders([]).rstrip(b"\n"))
write("header_case_alias.csv", orders([], header=" ORDER_ID ,Customer_Id,order_date,PRODUCT_ID,unit_price,quantity,Amount"))
write("quotes_and_newlines.csv", customers([
    '1,"Smith, ""Jo""","NW1 6XE"',
    '2,"two\nlines","1000"',
    '3,"",""',
]))
write("invalid_utf8_field.csv", customers(["1,Caf\xe9 Bar,75001".encode("latin-1").decode("latin-1")]).replace(b"Caf\xc3\xa9", b"Caf\xe9"))
write("nul_in_field.csv", customers(["1,Nul\x00Name,75001"]))
write("not_an_integer.csv", orders(["1,7,2026-01-02,4,1.00,ten,10.00"]))
write("int_out_of_range.csv", orders(["99999999999,7,2026-01-02,4,1.00,1,1.00"]))
write("not_a_number.csv", orders(["1,7,2026-01-02,4,abc,1,1.00"]))
write("too_many_decimals.csv", orders(["1,7,2026-01-02,4,1.234,1,1.23"]))
write("numeric_overflow.csv", orders(["1,7,2026-01-02,4,1.00,1,12345678901.00"]))
write("impossible_date.csv", orders(["1,7,2026-02-30,4,1.00,1,1.00"]))
write("wrong_date_format.csv", orders(["1,7,02/01/2026,4,1.00,1,1.00"]))
write("negative_quantity.csv", orders(["1,7,2026-01-02,4,1.00,-1,1.00"]))
write("null_in_not_null.csv", orders([",7,2026-01-02,4,1.00,1,1.00"]))
write("too_few_fields.csv", orders(["1,7,2026-01-02"]))
write("too_many_fields.csv", orders(["1,7,2026-01-02,4,1.00,1,1.00,extra"]))
write("duplicate_natural_key.csv", orders([order(5), order(6), order(5).replace(",2,3.00", ",1,1.50")]))
write("smallint_range_reviews.csv", ("\n".join([REVIEWS, "70000,1", "7,2", "0,3", ",4"] + [f"{i % 5 + 1},{i}" for i in range(5, 81)]) + "\n").encode())
write("at_threshold_reviews.csv", ("\n".join([REVIEWS, "x,1"] + [f"{i % 5 + 1},{i}" for i in range(2, 21)]) + "\n").encode())
