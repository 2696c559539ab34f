# correlated.sh — a small database a model can learn in seconds, for the
# tests of model versions (integration/models_per_database, standby_models).
# Sourced after cluster.sh and fault.sh.
#
#   correlated_db DB B_OF_A   create DB with the extension and two tables:
#                             t1 (a = id % 50, b = B_OF_A, an SQL expression of
#                             a: PostgreSQL multiplies the two selectivities,
#                             the truth does not) and t2 joined to t1
#   correlated_workload FILE  200 queries on them, four templates (enough to
#                             hold some out for validation)

correlated_db() {
  q "CREATE DATABASE $1" >/dev/null
  pp_psql -d "$1" -c "CREATE EXTENSION pg_pilot;
    CREATE TABLE t1 (id int PRIMARY KEY, a int, b int);
    INSERT INTO t1 SELECT g, g % 50, $2 FROM (SELECT g, g % 50 AS a FROM generate_series(1, 20000) g) s;
    CREATE TABLE t2 (id int, t1_id int, c int);
    INSERT INTO t2 SELECT g, 1 + (g * 7919) % 20000, g % 100 FROM generate_series(1, 40000) g;
    ANALYZE t1; ANALYZE t2;" >/dev/null
}

correlated_workload() {
  local i
  for i in $(seq 0 49); do
    echo "SELECT count(*) FROM t1 WHERE a = $i AND b = $i"
    echo "SELECT count(*) FROM t1 WHERE a = $i AND b = $(( (i * 7) % 50 ))"
    echo "SELECT count(*) FROM t1 JOIN t2 ON t2.t1_id = t1.id WHERE t1.a = $i AND t1.b = $i AND t2.c < $(( i * 2 ))"
    echo "SELECT count(*) FROM t1 JOIN t2 ON t2.t1_id = t1.id WHERE t1.a = $i AND t1.b = $(( (i * 7) % 50 )) AND t2.c < $(( i * 2 ))"
  done >"$1"
}
