-- A few rows in pagila's tables, written for ferry's tests (the full data set is 5 MB):
-- enough for every view, the partitioned payment table, arrays, enums, tsvector and bytea.
SET session_replication_role = replica; -- store and staff reference each other
INSERT INTO public.language (language_id, name) VALUES (1, 'English'), (2, 'Italian');
INSERT INTO public.category (category_id, name) VALUES (1, 'Action'), (2, 'Comedy');
INSERT INTO public.actor (actor_id, first_name, last_name) VALUES
  (1, 'PENELOPE', 'GUINESS'), (2, 'NICK', 'WAHLBERG'), (3, 'ED', 'CHASE');
INSERT INTO public.film (film_id, title, description, release_year, language_id, rental_rate,
  length, replacement_cost, rating, special_features, fulltext) VALUES
  (1, 'ACADEMY DINOSAUR', 'An Epic Drama', 2006, 1, 0.99, 86, 20.99, 'PG',
   '{"Deleted Scenes","Behind the Scenes"}', to_tsvector('academy dinosaur')),
  (2, 'ACE GOLDFINGER', 'A Astounding Epistle', 2006, 2, 4.99, 48, 12.99, 'G',
   '{Trailers}', to_tsvector('ace goldfinger'));
INSERT INTO public.film_actor (actor_id, film_id) VALUES (1, 1), (2, 1), (3, 2);
INSERT INTO public.film_category (film_id, category_id) VALUES (1, 1), (2, 2);
INSERT INTO public.country (country_id, country) VALUES (1, 'Italy');
INSERT INTO public.city (city_id, city, country_id) VALUES (1, 'Roma', 1);
INSERT INTO public.address (address_id, address, district, city_id, postal_code, phone) VALUES
  (1, '47 MySakila Drive', 'Alberta', 1, NULL, ''), (2, '28 MySQL Boulevard', 'QLD', 1, '', '');
INSERT INTO public.store (store_id, manager_staff_id, address_id) VALUES (1, 1, 1);
INSERT INTO public.staff (staff_id, first_name, last_name, address_id, email, store_id, username,
  password, picture) VALUES
  (1, 'Mike', 'Hillyer', 1, 'Mike.Hillyer@sakilastaff.com', 1, 'Mike',
   '8cb2237d0679ca88db6464eac60da96345513964', '\x89504e470d0a1a0a');
INSERT INTO public.customer (customer_id, store_id, first_name, last_name, email, address_id, active)
  VALUES (1, 1, 'MARY', 'SMITH', 'MARY.SMITH@sakilacustomer.org', 2, 1);
INSERT INTO public.inventory (inventory_id, film_id, store_id) VALUES (1, 1, 1), (2, 2, 1);
INSERT INTO public.rental (rental_id, rental_date, inventory_id, customer_id, return_date, staff_id)
  VALUES (1, '2022-01-24 21:54:33+00', 1, 1, '2022-01-26 21:23:00+00', 1),
         (2, '2022-02-14 09:00:00+00', 2, 1, NULL, 1);
INSERT INTO public.payment (payment_id, customer_id, staff_id, rental_id, amount, payment_date)
  VALUES (1, 1, 1, 1, 2.99, '2022-01-24 22:40:19.27+00'),
         (2, 1, 1, 2, 0.99, '2022-02-15 07:49:23.5+00');
SET session_replication_role = DEFAULT;
SELECT pg_catalog.setval('public.actor_actor_id_seq', 3);
SELECT pg_catalog.setval('public.film_film_id_seq', 2);
REFRESH MATERIALIZED VIEW public.rental_by_category;
