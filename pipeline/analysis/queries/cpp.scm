(function_definition
  declarator: (function_declarator declarator: [(identifier) (field_identifier)] @name)) @definition.function
(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator declarator: [(identifier) (field_identifier)] @name))) @definition.function
(function_definition
  declarator: (reference_declarator
    (function_declarator declarator: [(identifier) (field_identifier)] @name))) @definition.function
(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier
      scope: [(namespace_identifier) (template_type)] @receiver
      name: [(identifier) (destructor_name) (operator_name)] @name))) @definition.method
(function_definition
  declarator: (function_declarator declarator: (destructor_name) @name)) @definition.function
(class_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.class
(struct_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.class
(namespace_definition name: [(namespace_identifier) (nested_namespace_specifier)] @name) @definition.module

(class_specifier
  (base_class_clause [(type_identifier) (qualified_identifier) (template_type)] @inherit.base)) @inherit.class
(struct_specifier
  (base_class_clause [(type_identifier) (qualified_identifier) (template_type)] @inherit.base)) @inherit.class

(preproc_include path: [(string_literal) (system_lib_string)] @import.module) @import

(call_expression function: (identifier) @call.name) @call
(call_expression function: (field_expression field: (field_identifier) @call.name)) @call
(call_expression function: (qualified_identifier name: (identifier) @call.name)) @call
