(class_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.class
(enum_declaration name: (identifier) @name) @definition.class
(record_declaration name: (identifier) @name) @definition.class
(annotation_type_declaration name: (identifier) @name) @definition.class
(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.method

(class_declaration
  superclass: (superclass [(type_identifier) (scoped_type_identifier) (generic_type)] @inherit.base)) @inherit.class
(class_declaration
  interfaces: (super_interfaces (type_list [(type_identifier) (scoped_type_identifier) (generic_type)] @inherit.base))) @inherit.class
(interface_declaration
  (extends_interfaces (type_list [(type_identifier) (scoped_type_identifier) (generic_type)] @inherit.base))) @inherit.class

(import_declaration [(scoped_identifier) (identifier)] @import.module) @import

(method_invocation name: (identifier) @call.name) @call
(object_creation_expression type: (type_identifier) @call.name) @call
