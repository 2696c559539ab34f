-- title: Latest gourmet groceries sold in Italy
-- The 10 most recent grocery lines over 100 EUR bought by Italian customers.
-- Groceries are cheap: only 0.2% of them (gourmet products) cost over 100.
-- PostgreSQL takes price and department for independent and expects about
-- 2 000 matches where there are 21, so it walks back through the order lines
-- from the newest one, expecting to meet 10 soon, and reads years of orders.
-- With the true counts the planner fetches the 18 gourmet products' lines by
-- index and sorts them.
SELECT o.id, o.ordered, c.email, p.name, oi.unit_price
FROM category cat, product p, order_item oi, orders o, customer c
WHERE p.category_id = cat.id
  AND oi.product_id = p.id
  AND oi.order_id = o.id
  AND o.customer_id = c.id
  AND cat.department = 'Grocery' AND p.price > 100
  AND c.country_id = 8
ORDER BY o.id DESC, oi.line_no
LIMIT 10;
