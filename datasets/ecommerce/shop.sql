-- A sample of the shop's own database: the tables extract.toml beside this file reads.
-- `landfall demo --from-db` creates it in a database of its own, fills it with each day's
-- sample data and extracts from it; tests and `landfall bench extract` use it too.
-- The columns the pipeline does not read (updated_at, created_at) are there because an
-- application's tables have them.
CREATE SCHEMA shop;

CREATE TABLE shop.customers (
    customer_id   int PRIMARY KEY,
    customer_name text NOT NULL,
    postal_code   text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.products (
    product_id       int PRIMARY KEY,
    product_category text NOT NULL,
    product_name     text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.orders (
    order_id    int PRIMARY KEY,
    customer_id int NOT NULL,
    order_date  date NOT NULL,
    product_id  int NOT NULL,
    unit_price  numeric(12,2) NOT NULL,
    quantity    int NOT NULL,
    total_price numeric(12,2) NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.reviews (
    review_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    review     smallint,
    product_id int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.shipments (
    id           int PRIMARY KEY,
    order_id     int NOT NULL,
    shipped_on   date,
    delivered_on date,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
