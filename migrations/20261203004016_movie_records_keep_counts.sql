-- The movies projection's document no longer holds every rating (issue 16: a popular movie's
-- hundreds of ratings were rewritten with each batch that touched it). It keeps how many
-- ratings of each value the movie has (`histogram`, 0.5 to 5.0); the ratings are the rows of
-- `movie_ratings`, which already hold them. Documents written before are converted here.
UPDATE movies
   SET record = (record - 'ratings') || jsonb_build_object(
           'histogram',
           (SELECT jsonb_agg(coalesce(counted.ratings, 0) ORDER BY half_stars)
              FROM generate_series(1, 10) AS half_stars
              LEFT JOIN (SELECT (rating.value->>0)::int AS value, count(*) AS ratings
                           FROM jsonb_each(record->'ratings') AS rating
                          GROUP BY 1) AS counted ON counted.value = half_stars))
 WHERE record ? 'ratings';
