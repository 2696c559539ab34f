-- title: Latest German invoice orders of electronics
-- The 10 most recent electronics lines over 100 EUR that German-speaking
-- customers in Germany paid by invoice, in EUR, shipped to Germany.  Country,
-- language, currency and ship-to country are one fact written five times;
-- PostgreSQL multiplies their selectivities and expects 1 matching line
-- where there are 5 300, so it computes them all and sorts them.  With the true
-- counts the planner walks back from the newest order and stops after 10.
SELECT o.id, o.ordered, c.email, p.name, oi.unit_price
FROM customer c, orders o, order_item oi, product p, category cat
WHERE o.customer_id = c.id
  AND oi.order_id = o.id
  AND oi.product_id = p.id
  AND p.category_id = cat.id
  AND c.country_id = 2 AND c.language = 'de' AND c.currency = 'EUR'
  AND o.ship_country_id = 2 AND o.currency = 'EUR' AND o.payment = 'invoice'
  AND cat.department = 'Electronics' AND p.price > 100
ORDER BY o.id DESC, oi.line_no
LIMIT 10;
