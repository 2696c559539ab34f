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
#   correlated_shapes_workload FILE
#                             1,200 queries, 30 templates (six predicate shapes
#                             on t1, alone and joined to t2 with four on t2):
#                             enough templates for the trainer to hold some out
#                             for calibration too, so that the version answers
#                             some join sets instead of declining them all

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

# a predicate on t1 of shape $1 (0-5) around the constant $2
correlated_t1_shape() {
  local i=$2 j=$(( ($2 * 7 + 3) % 50 ))
  case $1 in
    0) echo "t1.a = $i AND t1.b = $i" ;;
    1) echo "t1.a = $i AND t1.b = $j" ;;
    2) echo "t1.a < $i AND t1.b < $(( i + 1 ))" ;;
    3) echo "t1.a >= $i AND t1.b >= $j" ;;
    4) echo "t1.a = $i AND t1.b >= $j" ;;
    5) echo "t1.a <= $i AND t1.b = $i" ;;
  esac
}

# and on t2 of shape $1 (0: none, 1-3)
correlated_t2_shape() {
  local k=$(( ($2 * 13) % 100 ))
  case $1 in
    1) echo " AND t2.c < $k" ;;
    2) echo " AND t2.c = $k" ;;
    3) echo " AND t2.c >= $k" ;;
  esac
}

correlated_shapes_workload() {
  local i s u
  for i in $(seq 0 39); do
    for s in 0 1 2 3 4 5; do
      for u in 0 1 2 3; do
        echo "SELECT count(*) FROM t1 JOIN t2 ON t2.t1_id = t1.id WHERE $(correlated_t1_shape $s $(( (i + u * 11) % 50 )))$(correlated_t2_shape $u $((i + s)))"
      done
      echo "SELECT count(*) FROM t1 WHERE $(correlated_t1_shape $s "$i")"
    done
  done >"$1"
}
