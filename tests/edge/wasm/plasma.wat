;; Drives the plasma_* imports from HTTP requests. The x-op header picks the
;; call: "get" (key = body; the raw value or 404), "set" (key = x-key, value =
;; body; answers 200 + the Plasma status), "delete" (no x-key; key = body;
;; 200 + status), "inc" / "dec" (key = x-key, amount = body in decimal;
;; answers the 8-byte little-endian new value, or 404) and "list" (the JSON
;; array).
(module
  (import "flaron/v1" "req_header_get" (func $header (param i32 i32) (result i64)))
  (import "flaron/v1" "req_body" (func $body (result i64)))
  (import "flaron/v1" "resp_set_status" (func $status (param i32)))
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (import "flaron/v1" "plasma_get" (func $get (param i32 i32) (result i64)))
  (import "flaron/v1" "plasma_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "flaron/v1" "plasma_delete" (func $delete (param i32 i32) (result i32)))
  (import "flaron/v1" "plasma_increment" (func $inc (param i32 i32 i64) (result i64)))
  (import "flaron/v1" "plasma_decrement" (func $dec (param i32 i32 i64) (result i64)))
  (import "flaron/v1" "plasma_list" (func $list (result i64)))
  (memory (export "memory") 6)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 16) "x-op")
  (data (i32.const 32) "x-key")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func $ptr (param i64) (result i32) (i32.wrap_i64 (i64.shr_u (local.get 0) (i64.const 32))))
  (func $len (param i64) (result i32) (i32.wrap_i64 (local.get 0)))
  (func $number (param $s i64) (result i64)
    (local $p i32) (local $end i32) (local $n i64)
    (local.set $p (call $ptr (local.get $s)))
    (local.set $end (i32.add (local.get $p) (call $len (local.get $s))))
    (block $done
      (loop $digit
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10))
                               (i64.extend_i32_u (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))))
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
    (local.set $k (call $header (i32.const 32) (i32.const 5)))
    (if (i32.eq (local.get $op) (i32.const 103))  ;; g
      (then (call $answer (call $get (call $ptr (local.get $b)) (call $len (local.get $b))))))
    (if (i32.eq (local.get $op) (i32.const 115))  ;; s
      (then (call $status (i32.add (i32.const 200)
        (call $set (call $ptr (local.get $k)) (call $len (local.get $k))
                   (call $ptr (local.get $b)) (call $len (local.get $b)))))))
    (if (i32.eq (local.get $op) (i32.const 100))  ;; d: delete or dec
      (then
        (if (i32.eqz (call $len (local.get $k)))
          (then (call $status (i32.add (i32.const 200)
                  (call $delete (call $ptr (local.get $b)) (call $len (local.get $b))))))
          (else (call $answer (call $dec (call $ptr (local.get $k)) (call $len (local.get $k))
                                         (call $number (local.get $b))))))))
    (if (i32.eq (local.get $op) (i32.const 105))  ;; i
      (then (call $answer (call $inc (call $ptr (local.get $k)) (call $len (local.get $k))
                                     (call $number (local.get $b))))))
    (if (i32.eq (local.get $op) (i32.const 108))  ;; l
      (then (call $answer (call $list))))
    (i64.const 0x100000000)))
