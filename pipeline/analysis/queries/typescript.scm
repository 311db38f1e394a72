(class_declaration name: (type_identifier) @name) @definition.class
(abstract_class_declaration name: (type_identifier) @name) @definition.class
(interface_declaration name: (type_identifier) @name) @definition.class
(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(method_definition name: [(property_identifier) (private_property_identifier)] @name) @definition.method
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.function
(internal_module name: [(identifier) (nested_identifier)] @name) @definition.module

(class_declaration
  (class_heritage (extends_clause value: [(identifier) (member_expression)] @inherit.base))) @inherit.class
(class_declaration
  (class_heritage (implements_clause [(type_identifier) (nested_type_identifier)] @inherit.base))) @inherit.class
(abstract_class_declaration
  (class_heritage (extends_clause value: [(identifier) (member_expression)] @inherit.base))) @inherit.class
(interface_declaration
  (extends_type_clause type: [(type_identifier) (nested_type_identifier)] @inherit.base)) @inherit.class

(import_statement source: (string (string_fragment) @import.module)) @import
(export_statement source: (string (string_fragment) @import.module)) @import

(call_expression function: (identifier) @call.name) @call
(call_expression function: (member_expression property: (property_identifier) @call.name)) @call
(new_expression constructor: (identifier) @call.name) @call
