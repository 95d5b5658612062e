;; Drives the spark_* imports from HTTP requests. The x-op header picks the
;; call: "get" (key = body; answers the raw payload: u32 LE TTL + value, or
;; 404), "set" (key = x-key header, value = body, TTL = x-ttl header in
;; decimal; answers status 200 + the returned Spark status), "delete"
;; (key = body), "list" (answers the JSON array) and "pull" (answers 200 +
;; the negated result).
(module
  (import "flaron/v1" "req_header_get" (func $header (param i32 i32) (result i64)))
  (import "flaron/v1" "req_body" (func $body (result i64)))
  (import "flaron/v1" "resp_set_status" (func $status (param i32)))
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (import "flaron/v1" "spark_get" (func $get (param i32 i32) (result i64)))
  (import "flaron/v1" "spark_set" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "flaron/v1" "spark_delete" (func $delete (param i32 i32)))
  (import "flaron/v1" "spark_list" (func $list (result i64)))
  (import "flaron/v1" "spark_pull" (func $pull (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 6)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 16) "x-op")
  (data (i32.const 32) "x-key")
  (data (i32.const 48) "x-ttl")
  (data (i32.const 64) "other-node")
  (data (i32.const 80) "[\"a\"]")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func $ptr (param i64) (result i32) (i32.wrap_i64 (i64.shr_u (local.get 0) (i64.const 32))))
  (func $len (param i64) (result i32) (i32.wrap_i64 (local.get 0)))
  ;; The decimal number in a packed (ptr, len) string.
  (func $number (param $s i64) (result i32)
    (local $p i32) (local $end i32) (local $n i32)
    (local.set $p (call $ptr (local.get $s)))
    (local.set $end (i32.add (local.get $p) (call $len (local.get $s))))
    (block $done
      (loop $digit
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
                               (i32.sub (i32.load8_u (local.get $p)) (i32.const 48))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $digit)))
    (local.get $n))
  (func $answer (param $v i64)
    (if (i64.eqz (local.get $v)) (then (call $status (i32.const 404))))
    (call $body_set (call $ptr (local.get $v)) (call $len (local.get $v))))
  (func (export "handle_request") (result i64)
    (local $op i32) (local $b i64) (local $k i64)
    (global.set $bump (i32.const 65536))
    (local.set $op (i32.load8_u (call $ptr (call $header (i32.const 16) (i32.const 4)))))
    (local.set $b (call $body))
    (if (i32.eq (local.get $op) (i32.const 103))  ;; g
      (then (call $answer (call $get (call $ptr (local.get $b)) (call $len (local.get $b))))))
    (if (i32.eq (local.get $op) (i32.const 115))  ;; s
      (then
        (local.set $k (call $header (i32.const 32) (i32.const 5)))
        (call $status (i32.add (i32.const 200)
          (call $set (call $ptr (local.get $k)) (call $len (local.get $k))
                     (call $ptr (local.get $b)) (call $len (local.get $b))
                     (call $number (call $header (i32.const 48) (i32.const 5))))))))
    (if (i32.eq (local.get $op) (i32.const 100))  ;; d
      (then (call $delete (call $ptr (local.get $b)) (call $len (local.get $b)))))
    (if (i32.eq (local.get $op) (i32.const 108))  ;; l
      (then (call $answer (call $list))))
    (if (i32.eq (local.get $op) (i32.const 112))  ;; p
      (then (call $status (i32.sub (i32.const 200)
        (call $pull (i32.const 64) (i32.const 10) (i32.const 80) (i32.const 5))))))
    (i64.const 0x100000000)))
