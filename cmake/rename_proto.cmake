# cmake -DIN=flame.proto -DOUT=ember_flame_wire.proto -P rename_proto.cmake
# Ember's private copy of flame.proto: same messages, another package.
file(READ ${IN} text)
string(REPLACE "package flame.v1;" "package ember.wire.flame.v1;" text "${text}")
file(WRITE ${OUT} "${text}")
