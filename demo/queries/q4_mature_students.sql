-- title: Invoice web orders of mature students
-- Revenue from web orders paid by invoice by students born before 1990.
-- Students are young and rarely pay by invoice; PostgreSQL takes segment,
-- birth year, payment and channel for independent and expects about 13 000
-- order lines where there are 10, so it hashes the whole orders table.  With
-- the true counts the planner follows the indexes from the few customers.
SELECT count(*) AS lines, sum(oi.quantity * oi.unit_price) AS revenue
FROM customer c, orders o, order_item oi, product p
WHERE o.customer_id = c.id
  AND oi.order_id = o.id
  AND oi.product_id = p.id
  AND c.segment = 'student' AND c.birth_year < 1990
  AND o.payment = 'invoice' AND o.channel = 'web';
