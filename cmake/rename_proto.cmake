# cmake -DIN=flame.proto -DOUT=ember_flame_wire.proto [-DPACKAGE=pkg] -P rename_proto.cmake
# Ember's private copy of flame.proto: same messages, another package.
if(NOT PACKAGE)
  set(PACKAGE ember.wire.flame.v1)
endif()
file(READ ${IN} text)
string(REPLACE "package flame.v1;" "package ${PACKAGE};" text "${text}")
file(WRITE ${OUT} "${text}")
