-- demo/data.sql — a small web shop whose columns are correlated the way real
-- data is, so PostgreSQL's independence assumptions go badly wrong.
--
--   country      30 rows   language, currency and continent per country
--   city      1 200 rows   40 per country, the capital first
--   customer  300 000      country skewed (US > DE > GB > ...), city skewed to
--                          the capital; language (93%) and currency (99%) follow
--                          the country; birth year follows the segment (students
--                          are born 1998-2006, but for 1% mature students)
--   category     40 rows   5 in each of 8 departments
--   brand       600 rows   20 per country, each with a main category, 20% premium
--   product   60 000       2 000 per brand country; 90% in the brand's main
--                          category; price by department (groceries are cheap,
--                          but for 0.2% gourmet products)
--   orders  1 200 000      ids follow the order date (2019-2024); ship-to country
--                          = customer's country (97%), currency = customer's,
--                          payment method by country and segment (iDEAL only in
--                          NL, Klarna in the Nordics, invoice for businesses and
--                          in DE/AT), channel by segment (students use the app)
--   order_item ~3 600 000  1-5 lines per order; half of them buy a product of a
--                          brand from the customer's own country
--   review     ~ 680 000   for about a fifth of the delivered lines and 60% of
--                          the returned ones, in the customer's language; a
--                          returned product gets 1-2 stars, premium brands 4-5
--
-- Scale: psql -v scale=S (default 1) multiplies customers and orders (and so
-- order lines and reviews); the catalog tables and the 60 000 products stay.
--
-- Deterministic: every "random" choice is a hash of the row number (no random()),
-- so every run builds the same data.  Indexes: primary keys and every foreign-key
-- column, as a DBA would create them; no extended statistics.
\set ON_ERROR_STOP 1
\if :{?scale}
\else
\set scale 1
\endif
SELECT greatest(1, round(300000 * :scale))::int AS n_customers,
       greatest(1, round(1200000 * :scale))::int AS n_orders \gset
SET client_min_messages = warning;
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
SET work_mem = '64MB';

DROP TABLE IF EXISTS review, order_item, orders, product, brand, category,
                     customer, city, country CASCADE;

-- u(k, salt): a uniform number in [0, 1) from a hash of (k, salt)
CREATE FUNCTION pg_temp.u(k bigint, salt int) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8(k * 1000003 + salt) & 2147483647)::float8 / 2147483648.0 $$;

\echo '  [1/9] country, city'
CREATE TABLE country (
  id        int PRIMARY KEY,
  code      text NOT NULL UNIQUE,
  name      text NOT NULL,
  continent text NOT NULL,
  language  text NOT NULL,
  currency  text NOT NULL,
  capital   text NOT NULL);
INSERT INTO country VALUES
 ( 1,'US','United States','North America','en','USD','Washington'),
 ( 2,'DE','Germany','Europe','de','EUR','Berlin'),
 ( 3,'GB','United Kingdom','Europe','en','GBP','London'),
 ( 4,'FR','France','Europe','fr','EUR','Paris'),
 ( 5,'JP','Japan','Asia','ja','JPY','Tokyo'),
 ( 6,'NL','Netherlands','Europe','nl','EUR','Amsterdam'),
 ( 7,'ES','Spain','Europe','es','EUR','Madrid'),
 ( 8,'IT','Italy','Europe','it','EUR','Rome'),
 ( 9,'SE','Sweden','Europe','sv','SEK','Stockholm'),
 (10,'PL','Poland','Europe','pl','PLN','Warsaw'),
 (11,'CA','Canada','North America','en','CAD','Ottawa'),
 (12,'BR','Brazil','South America','pt','BRL','Brasilia'),
 (13,'MX','Mexico','North America','es','MXN','Mexico City'),
 (14,'AU','Australia','Oceania','en','AUD','Canberra'),
 (15,'BE','Belgium','Europe','nl','EUR','Brussels'),
 (16,'AT','Austria','Europe','de','EUR','Vienna'),
 (17,'CH','Switzerland','Europe','de','CHF','Bern'),
 (18,'DK','Denmark','Europe','da','DKK','Copenhagen'),
 (19,'NO','Norway','Europe','no','NOK','Oslo'),
 (20,'FI','Finland','Europe','fi','EUR','Helsinki'),
 (21,'IE','Ireland','Europe','en','EUR','Dublin'),
 (22,'PT','Portugal','Europe','pt','EUR','Lisbon'),
 (23,'CZ','Czechia','Europe','cs','CZK','Prague'),
 (24,'KR','South Korea','Asia','ko','KRW','Seoul'),
 (25,'IN','India','Asia','en','INR','New Delhi'),
 (26,'CN','China','Asia','zh','CNY','Beijing'),
 (27,'ZA','South Africa','Africa','en','ZAR','Pretoria'),
 (28,'AR','Argentina','South America','es','ARS','Buenos Aires'),
 (29,'NZ','New Zealand','Oceania','en','NZD','Wellington'),
 (30,'SG','Singapore','Asia','en','SGD','Singapore');

CREATE TABLE city (
  id         int PRIMARY KEY,
  country_id int NOT NULL,
  name       text NOT NULL);
INSERT INTO city
  SELECT (co.id - 1) * 40 + k, co.id,
         CASE WHEN k = 1 THEN co.capital ELSE co.code || ' city ' || k END
  FROM country co, generate_series(1, 40) k;

\echo '  [2/9] customer (' :n_customers ')'
CREATE TABLE customer (
  id         int PRIMARY KEY,
  country_id int NOT NULL,
  city_id    int NOT NULL,
  language   text NOT NULL,
  currency   text NOT NULL,
  segment    text NOT NULL,
  birth_year int NOT NULL,
  signup     date NOT NULL,
  email      text NOT NULL);
INSERT INTO customer
SELECT g, co.id,
       (co.id - 1) * 40 + 1 + floor(40 * u_city ^ 3)::int,           -- capital ~ 27%
       CASE WHEN co.code = 'BE' AND u_lang < 0.40 THEN 'fr'
            WHEN u_lang < 0.93 THEN co.language
            WHEN co.language = 'en' THEN 'es' ELSE 'en' END,
       CASE WHEN u_cur < 0.99 THEN co.currency                            -- 1%: a foreign account
            WHEN co.currency = 'EUR' THEN 'USD' ELSE 'EUR' END,
       seg,
       CASE WHEN seg = 'student' AND u_age < 0.01 THEN 1975 + floor(2300 * u_age)::int  -- 1% mature students
            WHEN seg = 'student' THEN 1998 + floor(9 * u_age)::int  -- u_age >= 0.01: 1998 .. 2006
            ELSE 1950 + floor(50 * u_age)::int END,
       date '2015-01-01' + floor(3650 * u_signup)::int,
       'customer' || g || '@example.com'
FROM (SELECT g,
             1 + floor(30 * pg_temp.u(g, 1) ^ 2)::int AS cty,          -- skewed to low ids
             pg_temp.u(g, 2) AS u_city, pg_temp.u(g, 3) AS u_lang,
             pg_temp.u(g, 4) AS u_cur, pg_temp.u(g, 6) AS u_age, pg_temp.u(g, 7) AS u_signup,
             CASE WHEN pg_temp.u(g, 5) < 0.15 THEN 'student'
                  WHEN pg_temp.u(g, 5) < 0.35 THEN 'business'
                  ELSE 'consumer' END AS seg
      FROM generate_series(1, :n_customers) g) s
JOIN country co ON co.id = s.cty;

\echo '  [3/9] category, brand, product (60 000)'
CREATE TABLE category (
  id         int PRIMARY KEY,
  name       text NOT NULL,
  department text NOT NULL);
INSERT INTO category
  SELECT (d - 1) * 5 + k,
         dep || ' ' || k,
         dep
  FROM unnest(ARRAY['Electronics','Home','Fashion','Beauty','Sports','Toys','Office','Grocery'])
       WITH ORDINALITY AS t(dep, d),
       generate_series(1, 5) k;

CREATE TABLE brand (
  id               int PRIMARY KEY,
  name             text NOT NULL,
  country_id       int NOT NULL,
  main_category_id int NOT NULL,
  premium          boolean NOT NULL);
INSERT INTO brand
  SELECT b, 'Brand ' || b, 1 + (b - 1) / 20,
         1 + floor(40 * pg_temp.u(b, 11))::int,
         pg_temp.u(b, 12) < 0.2
  FROM generate_series(1, 600) b;

CREATE TABLE product (
  id          int PRIMARY KEY,
  brand_id    int NOT NULL,
  category_id int NOT NULL,
  name        text NOT NULL,
  price       numeric(10,2) NOT NULL,
  launched    int NOT NULL);
-- products 2000*(c-1)+1 .. 2000*c belong to the 20 brands of country c; the
-- price follows the department (and the brand): electronics are expensive,
-- groceries cheap except for 0.2% gourmet products
INSERT INTO product
SELECT s.g, s.brand_id, s.category_id, 'Product ' || s.g,
       round((CASE WHEN s.premium THEN 2.5 ELSE 1 END * CASE cat.department
         WHEN 'Electronics' THEN 20 + 1500 * s.u_price ^ 3
         WHEN 'Home'        THEN 10 +  300 * s.u_price ^ 3
         WHEN 'Fashion'     THEN 10 +  200 * s.u_price ^ 2
         WHEN 'Beauty'      THEN  3 +   80 * s.u_price ^ 2
         WHEN 'Sports'      THEN 10 +  400 * s.u_price ^ 3
         WHEN 'Toys'        THEN  5 +  100 * s.u_price ^ 2
         WHEN 'Office'      THEN  2 +  150 * s.u_price ^ 3
         ELSE CASE WHEN pg_temp.u(s.g, 25) < 0.002 THEN 100 + 200 * s.u_price   -- gourmet
                   ELSE 1 + 29 * s.u_price END
       END)::numeric, 2),
       s.launched
FROM (SELECT g, b.id AS brand_id, b.premium,
             CASE WHEN pg_temp.u(g, 21) < 0.9 THEN b.main_category_id
                  ELSE 1 + floor(40 * pg_temp.u(g, 22))::int END AS category_id,
             pg_temp.u(g, 23) AS u_price,
             2010 + floor(15 * pg_temp.u(g, 24))::int AS launched
      FROM generate_series(1, 60000) g
      JOIN brand b ON b.id = ((g - 1) / 2000) * 20 + 1 + ((g - 1) % 20)) s
JOIN category cat ON cat.id = s.category_id
ORDER BY s.g;

\echo '  [4/9] orders (' :n_orders ')'
CREATE TABLE orders (
  id              int PRIMARY KEY,
  customer_id     int NOT NULL,
  ordered         date NOT NULL,
  status          text NOT NULL,
  channel         text NOT NULL,
  payment         text NOT NULL,
  ship_country_id int NOT NULL,
  currency        text NOT NULL);
INSERT INTO orders
SELECT s.g, c.id,
       s.ordered,
       CASE WHEN s.ordered > date '2024-12-20' THEN (CASE WHEN s.u_st < 0.5 THEN 'pending' ELSE 'shipped' END)
            WHEN s.u_st < 0.90 THEN 'delivered'
            WHEN s.u_st < 0.96 THEN 'returned'
            ELSE 'cancelled' END,
       CASE c.segment
            WHEN 'student'  THEN (CASE WHEN s.u_ch < 0.75 THEN 'app' WHEN s.u_ch < 0.94 THEN 'web' WHEN s.u_ch < 0.99 THEN 'marketplace' ELSE 'phone' END)
            WHEN 'business' THEN (CASE WHEN s.u_ch < 0.70 THEN 'web' WHEN s.u_ch < 0.95 THEN 'phone' ELSE 'app' END)
            ELSE                 (CASE WHEN s.u_ch < 0.50 THEN 'web' WHEN s.u_ch < 0.80 THEN 'app' ELSE 'marketplace' END)
       END,
       CASE WHEN c.segment = 'business' AND s.u_pay < 0.6 THEN 'invoice'
            WHEN co.code = 'NL' THEN (CASE WHEN s.u_pay < 0.75 THEN 'ideal' WHEN s.u_pay < 0.9 THEN 'card' ELSE 'paypal' END)
            WHEN co.code IN ('DE','AT') THEN (CASE WHEN s.u_pay < 0.35 THEN 'invoice' WHEN s.u_pay < 0.75 THEN 'paypal' ELSE 'card' END)
            WHEN co.code IN ('SE','NO','DK','FI') THEN (CASE WHEN s.u_pay < 0.6 THEN 'klarna' ELSE 'card' END)
            WHEN co.code = 'CN' THEN (CASE WHEN s.u_pay < 0.85 THEN 'alipay' ELSE 'card' END)
            WHEN co.code = 'JP' THEN (CASE WHEN s.u_pay < 0.3 THEN 'konbini' ELSE 'card' END)
            ELSE (CASE WHEN s.u_pay < 0.6 THEN 'card' ELSE 'paypal' END)
       END,
       CASE WHEN s.u_ship < 0.97 THEN c.country_id ELSE 1 + floor(30 * s.u_ship2)::int END,
       c.currency
FROM (SELECT g, 1 + floor(:n_customers * pg_temp.u(g, 31))::int AS cust,
             date '2019-01-01' + (g * 2190::bigint / (:n_orders + 1))::int AS ordered,  -- ids follow time
             pg_temp.u(g, 33) AS u_st, pg_temp.u(g, 34) AS u_ch, pg_temp.u(g, 35) AS u_pay,
             pg_temp.u(g, 36) AS u_ship, pg_temp.u(g, 37) AS u_ship2
      FROM generate_series(1, :n_orders) g) s
JOIN customer c ON c.id = s.cust
JOIN country co ON co.id = c.country_id
ORDER BY s.g;

\echo '  [5/9] order_item (about 3 per order)'
CREATE TABLE order_item (
  order_id   int NOT NULL,
  line_no    int NOT NULL,
  product_id int NOT NULL,
  quantity   int NOT NULL,
  unit_price numeric(10,2) NOT NULL);
INSERT INTO order_item
SELECT s.order_id, s.line_no, p.id, s.quantity, p.price
FROM (SELECT o.id AS order_id, l AS line_no,
             CASE WHEN pg_temp.u(o.id * 8 + l, 41) < 0.5   -- half: a brand of the customer's country
                  THEN 2000 * (c.country_id - 1) + 1 + floor(2000 * pg_temp.u(o.id * 8 + l, 42))::int
                  ELSE 1 + floor(60000 * pg_temp.u(o.id * 8 + l, 43))::int END AS product_id,
             1 + floor(3 * pg_temp.u(o.id * 8 + l, 44) ^ 2)::int AS quantity
      FROM orders o
      JOIN customer c ON c.id = o.customer_id
      CROSS JOIN LATERAL generate_series(1, 1 + floor(5 * pg_temp.u(o.id, 40))::int) l) s
JOIN product p ON p.id = s.product_id
ORDER BY s.order_id, s.line_no;
ALTER TABLE order_item ADD PRIMARY KEY (order_id, line_no);

\echo '  [6/9] review (for about a fifth of the lines)'
CREATE TABLE review (
  id          int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  product_id  int NOT NULL,
  customer_id int NOT NULL,
  rating      int NOT NULL,
  language    text NOT NULL,
  created     date NOT NULL);
-- reviews arrive over time, so the table is in date order, not product order
INSERT INTO review (product_id, customer_id, rating, language, created)
SELECT oi.product_id, o.customer_id,
       CASE WHEN o.status = 'returned' THEN 1 + floor(2 * pg_temp.u(oi.order_id * 8 + oi.line_no, 51))::int
            WHEN b.premium THEN 4 + floor(2 * pg_temp.u(oi.order_id * 8 + oi.line_no, 51))::int
            ELSE 2 + floor(4 * pg_temp.u(oi.order_id * 8 + oi.line_no, 51))::int END,
       c.language,
       o.ordered + 3 + floor(40 * pg_temp.u(oi.order_id * 8 + oi.line_no, 52))::int
FROM order_item oi
JOIN orders o ON o.id = oi.order_id
JOIN customer c ON c.id = o.customer_id
JOIN product p ON p.id = oi.product_id
JOIN brand b ON b.id = p.brand_id
WHERE o.status IN ('delivered', 'returned')
  AND pg_temp.u(oi.order_id * 8 + oi.line_no, 50) < (CASE WHEN o.status = 'returned' THEN 0.6 ELSE 0.17 END)
ORDER BY 5, oi.order_id, oi.line_no;

\echo '  [7/9] foreign keys'
ALTER TABLE city       ADD FOREIGN KEY (country_id)       REFERENCES country;
ALTER TABLE customer   ADD FOREIGN KEY (country_id)       REFERENCES country,
                       ADD FOREIGN KEY (city_id)          REFERENCES city;
ALTER TABLE brand      ADD FOREIGN KEY (country_id)       REFERENCES country,
                       ADD FOREIGN KEY (main_category_id) REFERENCES category;
ALTER TABLE product    ADD FOREIGN KEY (brand_id)         REFERENCES brand,
                       ADD FOREIGN KEY (category_id)      REFERENCES category;
ALTER TABLE orders     ADD FOREIGN KEY (customer_id)      REFERENCES customer,
                       ADD FOREIGN KEY (ship_country_id)  REFERENCES country;
ALTER TABLE order_item ADD FOREIGN KEY (order_id)         REFERENCES orders,
                       ADD FOREIGN KEY (product_id)       REFERENCES product;
ALTER TABLE review     ADD FOREIGN KEY (product_id)       REFERENCES product,
                       ADD FOREIGN KEY (customer_id)      REFERENCES customer;

\echo '  [8/9] indexes on foreign-key columns'
CREATE INDEX ON city (country_id);
CREATE INDEX ON customer (country_id);
CREATE INDEX ON customer (city_id);
CREATE INDEX ON brand (country_id);
CREATE INDEX ON product (brand_id);
CREATE INDEX ON product (category_id);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON orders (ship_country_id);
CREATE INDEX ON order_item (product_id);
CREATE INDEX ON review (product_id);
CREATE INDEX ON review (customer_id);

\echo '  [9/9] VACUUM ANALYZE'
VACUUM ANALYZE;
