-- title: Verified-buyer complaints
-- Bad (1-2 star) English reviews by US customers about a product that was in
-- one of their own returned orders.  Language, currency, ship-to country, bad
-- ratings and returns all go together; PostgreSQL multiplies their
-- selectivities and expects about 90 (review, returned order) pairs where
-- there are 15 000, so for each pair it fetches all ~30 order lines of the
-- reviewed product by index.  With the true counts the planner joins the
-- returned orders to their lines first and hashes the reviews against them.
SELECT count(DISTINCT r.id) AS complaints
FROM review r, order_item oi, orders o, customer c
WHERE r.product_id = oi.product_id
  AND oi.order_id = o.id
  AND o.customer_id = r.customer_id
  AND c.id = o.customer_id
  AND r.language = 'en' AND r.rating <= 2
  AND o.status = 'returned' AND o.ship_country_id = 1
  AND c.country_id = 1 AND c.currency = 'USD';
